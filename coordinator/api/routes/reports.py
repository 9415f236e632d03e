"""A worker's reports on its task: progress (renews the lease), completion, failure."""

from __future__ import annotations

from fastapi import APIRouter, Request

from coordinator.api.deps import CorrelationId, MetricsDep, ReporterId, TaskId, WiringDep
from coordinator.api.problems.openapi import AUTHENTICATED, problem_responses
from coordinator.api.schemas import (
    CompletionReport,
    FailureReport,
    ProgressReport,
    ReportResponse,
)
from coordinator.api.submission import submit
from coordinator.service.outcomes import TaskOutcome
from core.domain.commands import CompleteSync, FailSync, ReportProgress, RequestMeta

router = APIRouter(prefix="/sync/tasks/{task_id}", tags=["worker reports"])
# 409: not the live task, the worker must stop; 429: this user's queue is full.
ERRORS = problem_responses(*AUTHENTICATED, 403, 409, 429)


async def _answer(
    request: Request,
    command: ReportProgress | CompleteSync | FailSync,
    name: str,
    wiring: WiringDep,
    metrics: MetricsDep,
) -> ReportResponse:
    outcome = await submit(request.receive, wiring, metrics, name, command)
    assert isinstance(outcome, TaskOutcome)
    return ReportResponse(
        task_id=outcome.task_id,
        status=outcome.status,
        version=outcome.version,
        lease_expires_at=outcome.lease_expires_at,
    )


@router.post("/progress", response_model=ReportResponse, responses=ERRORS)
async def report_progress(
    request: Request,
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
    return await _answer(request, command, "progress", wiring, metrics)


@router.post("/complete", response_model=ReportResponse, responses=ERRORS)
async def report_completion(
    request: Request,
    task_id: TaskId,
    body: CompletionReport,
    user_id: ReporterId,
    wiring: WiringDep,
    metrics: MetricsDep,
    correlation_id: CorrelationId,
) -> ReportResponse:
    """Record that the task finished."""
    command = CompleteSync(user_id, task_id, body.stats, RequestMeta(correlation_id))
    return await _answer(request, command, "complete", wiring, metrics)


@router.post("/fail", response_model=ReportResponse, responses=ERRORS)
async def report_failure(
    request: Request,
    task_id: TaskId,
    body: FailureReport,
    user_id: ReporterId,
    wiring: WiringDep,
    metrics: MetricsDep,
    correlation_id: CorrelationId,
) -> ReportResponse:
    """Record that the task gave up."""
    command = FailSync(user_id, task_id, body.error, RequestMeta(correlation_id))
    return await _answer(request, command, "fail", wiring, metrics)
