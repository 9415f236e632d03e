"""Reads of the projected views: status (with read-your-writes), task history."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.concurrency import run_in_threadpool

from coordinator.api import cursors
from coordinator.api.cursors import CURSOR_PATTERN
from coordinator.api.deps import SettingsDep, TaskId, UserId, WiringDep
from coordinator.api.input_rules import TASK_ID_PATTERN
from coordinator.api.problems.openapi import AUTHENTICATED, problem_responses
from coordinator.api.schemas import StatusResponse, TaskPage, TaskResponse

router = APIRouter(prefix="/sync", tags=["status"])
POLL_SECONDS = 0.02
TASK_PATTERN = re.compile(TASK_ID_PATTERN)


@router.get("/status", response_model=StatusResponse, responses=problem_responses(*AUTHENTICATED))
async def sync_status(
    user_id: UserId,
    wiring: WiringDep,
    settings: SettingsDep,
    min_version: Annotated[
        int, Query(ge=0, description="Wait (bounded) until the view has applied this version")
    ] = 0,
) -> StatusResponse:
    """The caller's status; with min_version, waits for the view to catch up, then answers."""
    deadline = time.monotonic() + settings.status_wait_max_seconds
    while True:
        row = await run_in_threadpool(wiring.read_models.status, user_id)
        version = int(row["last_version"]) if row else 0
        if version >= min_version or time.monotonic() >= deadline:
            break
        await asyncio.sleep(POLL_SECONDS)
    fields = {k: v for k, v in (row or {}).items() if k != "last_version"}
    return StatusResponse(
        **{**fields, "user_id": user_id}, version=version, caught_up=version >= min_version
    )


@router.get("/tasks", response_model=TaskPage, responses=problem_responses(*AUTHENTICATED))
def recent_tasks(
    user_id: UserId,
    wiring: WiringDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[
        str | None,
        Query(max_length=200, pattern=CURSOR_PATTERN, description="next_cursor of a page"),
    ] = None,
) -> TaskPage:
    """The caller's tasks, newest first."""
    rows = wiring.read_models.recent_tasks(user_id, limit, _after(cursor) if cursor else None)
    tasks = [TaskResponse.model_validate(r) for r in rows]
    last = tasks[-1] if len(tasks) == limit else None
    return TaskPage(
        tasks=tasks, next_cursor=cursors.encode(last.started_at, last.task_id) if last else None
    )


@router.get(
    "/tasks/{task_id}",
    response_model=TaskResponse,
    responses=problem_responses(*AUTHENTICATED, 404),
)
def one_task(task_id: TaskId, user_id: UserId, wiring: WiringDep) -> TaskResponse:
    """One of the caller's tasks; another user's task is not found."""
    row = wiring.read_models.task(user_id, task_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no task {task_id} for this user")
    return TaskResponse.model_validate(row)


def _after(cursor: str) -> tuple[datetime, str]:
    started_at, (task_id,) = cursors.decode(cursor, _task_id)
    return started_at, task_id


def _task_id(value: object) -> bool:
    return isinstance(value, str) and TASK_PATTERN.match(value) is not None
