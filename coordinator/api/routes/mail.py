"""The caller's synced mail: folders with counts, messages newest first in keyset pages."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from coordinator.api import cursors
from coordinator.api.cursors import CURSOR_PATTERN
from coordinator.api.deps import UserId
from coordinator.api.mail_deps import MessagesDep
from coordinator.api.mail_schemas import (
    PRINTABLE,
    FolderList,
    FolderResponse,
    MessagePage,
    MessageResponse,
)
from coordinator.api.problems.openapi import AUTHENTICATED, problem_responses

router = APIRouter(prefix="/mail", tags=["mail"])


@router.get("/folders", response_model=FolderList, responses=problem_responses(*AUTHENTICATED))
def folders(user_id: UserId, messages: MessagesDep) -> FolderList:
    """Each synced folder: messages stored, UIDVALIDITY, time of its last sync."""
    return FolderList(folders=[FolderResponse(**row) for row in messages.folders(user_id)])


@router.get("/messages", response_model=MessagePage, responses=problem_responses(*AUTHENTICATED))
def list_messages(
    user_id: UserId,
    messages: MessagesDep,
    folder: Annotated[str | None, Query(min_length=1, max_length=200, pattern=PRINTABLE)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        str | None,
        Query(max_length=600, pattern=CURSOR_PATTERN, description="next_cursor of a page"),
    ] = None,
) -> MessagePage:
    """The caller's messages, newest first (by the server's INTERNALDATE)."""
    rows = messages.page(user_id, folder, limit, _after(cursor) if cursor else None)
    page = [MessageResponse(**row) for row in rows]
    last = page[-1] if len(page) == limit else None
    return MessagePage(
        messages=page,
        next_cursor=cursors.encode(last.received_at, last.folder, last.uid) if last else None,
    )


def _after(cursor: str) -> tuple[datetime, str, int]:
    received_at, (folder, uid) = cursors.decode(cursor, _folder_name, _uid)
    return received_at, folder, uid


def _uid(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**32


def _folder_name(folder: object) -> bool:
    """What a stored folder name can be: printable, at most 200 characters, UTF-8 encodable
    (no lone surrogate, no NUL: PostgreSQL refuses those with an error, not an empty page)."""
    if not isinstance(folder, str) or not 0 < len(folder) <= 200:
        return False
    if not re.fullmatch(PRINTABLE, folder):
        return False
    try:
        folder.encode()
    except UnicodeEncodeError:
        return False
    return True
