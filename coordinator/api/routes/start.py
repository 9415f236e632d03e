"""POST /sync/smart: request -> StartRequested -> the user's queue -> SyncResponse."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, status

from coordinator.api.deps import CorrelationId, MetricsDep, UserId, WiringDep
from coordinator.api.input_rules import HEADER_PATTERN, MAX_HEADER_TEXT
from coordinator.api.problems.openapi import AUTHENTICATED, problem_responses
from coordinator.api.schemas import SyncResponse
from coordinator.api.start_click import start_command, start_response
from coordinator.api.submission import submit

router = APIRouter()
# 409: version conflicts outlasted the retries; 429: this user's queue is full.
ERRORS = problem_responses(*AUTHENTICATED, 409, 429)


@router.post(
    "/sync/smart",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SyncResponse,
    responses=ERRORS,
)
async def smart_sync(
    request: Request,
    user_id: UserId,
    wiring: WiringDep,
    metrics: MetricsDep,
    correlation_id: CorrelationId,
    force_full: Annotated[
        bool, Query(description="Ask for a full sync instead of incremental")
    ] = False,
    idempotency_key: Annotated[
        str | None,
        Header(alias="Idempotency-Key", max_length=MAX_HEADER_TEXT, pattern=HEADER_PATTERN),
    ] = None,
) -> SyncResponse:
    """Start a sync for the caller, or join the one already running."""
    user_agent = request.headers.get("user-agent")
    command = start_command(user_id, force_full, idempotency_key, correlation_id, user_agent)
    outcome = await submit(request.receive, wiring, metrics, "start", command)
    return start_response(outcome)
