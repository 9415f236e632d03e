"""A worker's reports on its task: progress (renews the lease), completion, failure."""

from __future__ import annotations

from fastapi import APIRouter

from coordinator.api.deps import CorrelationId, MetricsDep, ReporterId, WiringDep
from coordinator.api.schemas import (
    CompletionReport,
    ErrorResponse,
    FailureReport,
    ProgressReport,
    ReportResponse,
)
from coordinator.domain.commands import CompleteSync, FailSync, ReportProgress, RequestMeta
from coordinator.service.handlers import HANDLERS, TaskOutcome

router = APIRouter(prefix="/sync/tasks/{task_id}", tags=["worker reports"])
ERRORS = {
    401: {"model": ErrorResponse, "description": "Missing or invalid bearer token"},
    403: {"model": ErrorResponse, "description": "Token lacks the sync:report scope"},
    409: {"model": ErrorResponse, "description": "Not the live task: the worker must stop"},
    503: {"model": ErrorResponse, "description": "Database unavailable or busy"},
}


def _answer(
    command: ReportProgress | CompleteSync | FailSync,
    name: str,
    wiring: WiringDep,
    metrics: MetricsDep,
) -> ReportResponse:
    with metrics.timed(name) as outcome_is:
        outcome: TaskOutcome = HANDLERS[type(command)](command, wiring.deps)
        outcome_is(outcome.status if name != "progress" else "progressed")
    return ReportResponse(
        task_id=outcome.task_id,
        status=outcome.status,
        version=outcome.version,
        lease_expires_at=outcome.lease_expires_at,
    )


@router.post("/progress", response_model=ReportResponse, responses=ERRORS)  # type: ignore[arg-type]
def report_progress(
    task_id: str,
    body: ProgressReport,
    user_id: ReporterId,
    wiring: WiringDep,
    metrics: MetricsDep,
    correlation_id: CorrelationId,
) -> ReportResponse:
    """Record progress and renew the task's lease."""
    meta = RequestMeta(correlation_id=correlation_id)
    command = ReportProgress(user_id, task_id, body.percent, body.stats, meta)
    return _answer(command, "progress", wiring, metrics)


@router.post("/complete", response_model=ReportResponse, responses=ERRORS)  # type: ignore[arg-type]
def report_completion(
    task_id: str,
    body: CompletionReport,
    user_id: ReporterId,
    wiring: WiringDep,
    metrics: MetricsDep,
    correlation_id: CorrelationId,
) -> ReportResponse:
    """Record that the task finished."""
    command = CompleteSync(user_id, task_id, body.stats, RequestMeta(correlation_id))
    return _answer(command, "complete", wiring, metrics)


@router.post("/fail", response_model=ReportResponse, responses=ERRORS)  # type: ignore[arg-type]
def report_failure(
    task_id: str,
    body: FailureReport,
    user_id: ReporterId,
    wiring: WiringDep,
    metrics: MetricsDep,
    correlation_id: CorrelationId,
) -> ReportResponse:
    """Record that the task gave up."""
    command = FailSync(user_id, task_id, body.error, RequestMeta(correlation_id))
    return _answer(command, "fail", wiring, metrics)
