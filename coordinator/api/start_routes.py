"""POST /sync/smart: request -> StartRequested -> the user's queue -> SyncResponse."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, status

from coordinator.api.deps import CorrelationId, MetricsDep, UserId, WiringDep
from coordinator.api.input_rules import client_name
from coordinator.api.openapi import AUTHENTICATED, problem_responses
from coordinator.api.schemas import SyncResponse
from coordinator.api.submission import submit
from coordinator.service.outcomes import Outcome, StartOutcome
from core.domain.commands import RequestMeta, StartRequested

router = APIRouter()
MESSAGES = {
    "started": "Sync started",
    "joined": "Sync already running; joined it",
    "queued": "An incremental sync is running; the full sync starts when it ends",
}

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
        Header(alias="Idempotency-Key", min_length=1, max_length=200, pattern=r"^[!-~]+$"),
    ] = None,
) -> SyncResponse:
    """Start a sync for the caller, or join the one already running."""
    user_agent = request.headers.get("user-agent")
    command = start_command(user_id, force_full, idempotency_key, correlation_id, user_agent)
    outcome = await submit(request.receive, wiring, metrics, "start", command)
    return start_response(outcome)


def start_command(
    user_id: str,
    force_full: bool,
    idempotency_key: str | None,
    correlation_id: str,
    user_agent: str | None,
) -> StartRequested:
    """The command a click asks for (also built by start_shortcut.py)."""
    meta = RequestMeta(
        correlation_id=correlation_id,
        idempotency_key=idempotency_key,
        client=client_name(user_agent),
    )
    return StartRequested(user_id=user_id, force_full=force_full, meta=meta)


def start_response(outcome: Outcome) -> SyncResponse:
    """What the click is answered (also by start_shortcut.py)."""
    assert isinstance(outcome, StartOutcome)
    return SyncResponse(
        message=MESSAGES[outcome.outcome],
        task_id=outcome.task_id,
        reused=outcome.reused,
        outcome=outcome.outcome,
        full_sync_queued=outcome.full_sync_queued,
        sync_type=outcome.sync_type,  # type: ignore[arg-type]
        started_at=outcome.started_at,
        lease_expires_at=outcome.lease_expires_at,
        version=outcome.version,
    )
