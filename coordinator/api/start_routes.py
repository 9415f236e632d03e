"""POST /sync/smart: request -> StartRequested -> start_sync -> SyncResponse."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, status
from fastapi.concurrency import run_in_threadpool

from coordinator.api.deps import CorrelationId, MetricsDep, UserId, WiringDep
from coordinator.api.metrics import CommandMetrics
from coordinator.api.openapi import AUTHENTICATED, problem_responses
from coordinator.api.schemas import SyncResponse
from coordinator.bootstrap import Wiring
from coordinator.domain.commands import RequestMeta, StartRequested
from coordinator.service.handlers import StartOutcome, start_sync

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
    command = StartRequested(
        user_id=user_id,
        force_full=force_full,
        meta=RequestMeta(correlation_id=correlation_id, idempotency_key=idempotency_key),
    )
    # One hop to the thread pool for the blocking transaction; the rest stays on the loop.
    outcome = await run_in_threadpool(_start, command, wiring, metrics)
    return SyncResponse(
        message="Sync already running; joined it" if outcome.reused else "Sync started",
        task_id=outcome.task_id,
        reused=outcome.reused,
        sync_type=outcome.sync_type,  # type: ignore[arg-type]
        started_at=outcome.started_at,
        lease_expires_at=outcome.lease_expires_at,
        version=outcome.version,
    )


def _start(command: StartRequested, wiring: Wiring, metrics: CommandMetrics) -> StartOutcome:
    with metrics.timed("start") as outcome_is:
        outcome = start_sync(command, wiring.deps)
        if outcome.replayed:
            outcome_is("replayed")
        elif outcome.reused:
            outcome_is("reused")
        else:
            outcome_is("expired_and_started" if outcome.expired_task_id else "started")
    return outcome
