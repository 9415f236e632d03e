"""POST /sync/tasks/{task_id}/cancel: the task's owner stops it."""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from coordinator.api.deps import CorrelationId, MetricsDep, TaskId, UserId, WiringDep
from coordinator.api.input_rules import client_name
from coordinator.api.problems.openapi import AUTHENTICATED, problem_responses
from coordinator.api.schemas import CancelResponse
from coordinator.api.submission import submit
from coordinator.service.outcomes import TaskOutcome
from core.domain.commands import CancelSync, RequestMeta

router = APIRouter(tags=["sync"])
# 404: not a task of this user; 409: it has already ended (reason says how); 429: queue full.
ERRORS = problem_responses(*AUTHENTICATED, 404, 409, 429)


@router.post(
    "/sync/tasks/{task_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=CancelResponse,
    responses=ERRORS,
)
async def cancel_task(
    request: Request,
    task_id: TaskId,
    user_id: UserId,
    wiring: WiringDep,
    metrics: MetricsDep,
    correlation_id: CorrelationId,
) -> CancelResponse:
    """Stop one of the caller's running tasks; its worker stops within a second."""
    client = client_name(request.headers.get("user-agent"))
    command = CancelSync(user_id, task_id, RequestMeta(correlation_id, client=client))
    outcome = await submit(request.receive, wiring, metrics, "cancel", command)
    assert isinstance(outcome, TaskOutcome)
    return CancelResponse(task_id=outcome.task_id, version=outcome.version)
