"""`GET /mail/changes`: the caller's mail change log, oldest first, from a cursor.

The cursor is a position in the caller's log (decimal digits), so it survives restarts and
means the same to every API process; the contract is in docs/mail.md, "The change feed".
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from consumers.mail.change_log import CursorAhead, CursorGone
from coordinator.api.deps import UserId
from coordinator.api.mail_deps import MessagesDep
from coordinator.api.mail_schemas import ChangePage, ChangeResponse, MessageResponse
from coordinator.api.problems.documents import problem
from coordinator.api.problems.openapi import AUTHENTICATED, problem_responses

router = APIRouter(prefix="/mail", tags=["mail"])
CURSOR_PATTERN = r"^(0|[1-9][0-9]{0,17})$"


@router.get("/changes", response_model=ChangePage, responses=problem_responses(*AUTHENTICATED, 410))
async def changes(
    request: Request,
    user_id: UserId,
    messages: MessagesDep,
    cursor: Annotated[
        str,
        Query(
            max_length=18,
            pattern=CURSOR_PATTERN,
            description="`next_cursor` or `head` of an earlier answer; 0: from the start",
        ),
    ] = "0",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ChangePage | Response:
    """The caller's stored mail changes after `cursor`, oldest first."""
    after = int(cursor)
    try:
        page = await run_in_threadpool(messages.changes, user_id, after, limit)
    except CursorGone as gone:
        detail = (
            f"the changes after position {after} are past the retention window (kept up to "
            f"{gone.args[0]} are gone); read GET /mail/messages again and follow from `head`"
        )
        return problem(request.scope, 410, detail, kind="mail-cursor-expired")
    except CursorAhead:
        detail = f"cursor {after} is ahead of this user's change log; it is not one this API gave"
        return problem(request.scope, 422, detail, kind="mail-cursor-unknown")
    entries = [_entry(row) for row in page.changes]
    last = entries[-1].position if entries else after
    return ChangePage(
        changes=entries, next_cursor=str(last), head=str(page.head), more=last < page.head
    )


def _entry(row: dict[str, Any]) -> ChangeResponse:
    message = None
    if row["kind"] in ("message_added", "flags_changed"):
        message = MessageResponse(
            **{k: row[k] for k in MessageResponse.model_fields}  # the fields copied at write
        )
    return ChangeResponse(
        position=row["position"],
        kind=row["kind"],
        folder=row["folder"],
        uidvalidity=row["uidvalidity"],
        uid=row["uid"],
        previous_uidvalidity=row["previous_uidvalidity"],
        rekeyed=row["rekeyed"],
        message=message,
        recorded_at=row["recorded_at"],
    )
