"""The caller's messages a sync could not store (`mail_skipped`), each with the reason."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from consumers.mail.skipped_mail import SkippedMail
from coordinator.api.deps import UserId
from coordinator.api.mail_schemas import PRINTABLE, SkippedList, SkippedMessage
from coordinator.api.problems.openapi import AUTHENTICATED, problem_responses
from coordinator.bootstrap import Wiring

router = APIRouter(prefix="/mail", tags=["mail"])


async def get_skipped(request: Request) -> SkippedMail:
    state = request.app.state
    if getattr(state, "mail_skipped", None) is None:
        wiring: Wiring = state.wiring
        state.mail_skipped = SkippedMail(wiring.engine)
    skipped: SkippedMail = state.mail_skipped
    return skipped


@router.get("/skipped", response_model=SkippedList, responses=problem_responses(*AUTHENTICATED))
def list_skipped(
    user_id: UserId,
    skipped: Annotated[SkippedMail, Depends(get_skipped)],
    folder: Annotated[str | None, Query(min_length=1, max_length=200, pattern=PRINTABLE)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> SkippedList:
    """Messages of the synced folders that could not be stored, by folder and UID."""
    rows = skipped.listed(user_id, folder, limit)
    return SkippedList(skipped=[SkippedMessage(**row) for row in rows])
