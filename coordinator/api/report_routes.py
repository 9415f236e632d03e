"""A worker's reports on its task: progress (renews the lease), completion, failure."""

from __future__ import annotations

from fastapi import APIRouter

from coordinator.api.deps import CorrelationId, MetricsDep, ReporterId, TaskId, WiringDep
from coordinator.api.openapi import AUTHENTICATED, problem_responses
from coordinator.api.schemas import (
    CompletionReport,
    FailureReport,
    ProgressReport,
    ReportResponse,
)
from coordinator.domain.commands import CompleteSync, FailSync, ReportProgress, RequestMeta
from coordinator.service.handlers import HANDLERS, TaskOutcome

router = APIRouter(prefix="/sync/tasks/{task_id}", tags=["worker reports"])
# 409: not the live task, the worker must stop; 429: this user's queue is full.
ERRORS = problem_responses(*AUTHENTICATED, 403, 409, 429)


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


@router.post("/progress", response_model=ReportResponse, responses=ERRORS)
def report_progress(
    task_id: TaskId,
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


@router.post("/complete", response_model=ReportResponse, responses=ERRORS)
def report_completion(
    task_id: TaskId,
    body: CompletionReport,
    user_id: ReporterId,
    wiring: WiringDep,
    metrics: MetricsDep,
    correlation_id: CorrelationId,
) -> ReportResponse:
    """Record that the task finished."""
    command = CompleteSync(user_id, task_id, body.stats, RequestMeta(correlation_id))
    return _answer(command, "complete", wiring, metrics)


@router.post("/fail", response_model=ReportResponse, responses=ERRORS)
def report_failure(
    task_id: TaskId,
    body: FailureReport,
    user_id: ReporterId,
    wiring: WiringDep,
    metrics: MetricsDep,
    correlation_id: CorrelationId,
) -> ReportResponse:
    """Record that the task gave up."""
    command = FailSync(user_id, task_id, body.error, RequestMeta(correlation_id))
    return _answer(command, "fail", wiring, metrics)
