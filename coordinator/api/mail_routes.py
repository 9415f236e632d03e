"""The caller's synced mail: folders with counts, messages newest first in keyset pages."""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from coordinator.api.deps import UserId
from coordinator.api.mail_deps import MessagesDep
from coordinator.api.mail_schemas import (
    PRINTABLE,
    FolderList,
    FolderResponse,
    MessagePage,
    MessageResponse,
)
from coordinator.api.openapi import AUTHENTICATED, problem_responses

router = APIRouter(prefix="/mail", tags=["mail"])
MAIL_CURSOR_PATTERN = r"^[A-Za-z0-9_=-]{1,600}$"


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
        Query(max_length=600, pattern=MAIL_CURSOR_PATTERN, description="next_cursor of a page"),
    ] = None,
) -> MessagePage:
    """The caller's messages, newest first (by the server's INTERNALDATE)."""
    rows = messages.page(user_id, folder, limit, _decode(cursor) if cursor else None)
    page = [MessageResponse(**row) for row in rows]
    last = page[-1] if len(page) == limit else None
    return MessagePage(
        messages=page,
        next_cursor=_encode(last.received_at, last.folder, last.uid) if last else None,
    )


def _encode(received_at: datetime, folder: str, uid: int) -> str:
    raw = json.dumps([received_at.isoformat(), folder, uid]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode(cursor: str) -> tuple[datetime, str, int]:
    """The key a cursor carries; anything this API did not make is a 422."""
    try:
        at, folder, uid = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        received_at = datetime.fromisoformat(at)
        valid = (
            _folder_name(folder)
            and isinstance(uid, int)
            and received_at.tzinfo is not None
            and 0 < uid < 2**32
        )
    except (ValueError, TypeError):
        valid = False
    if not valid:
        raise HTTPException(422, "cursor is not one this API returned")
    return received_at, folder, uid


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
