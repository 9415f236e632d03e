"""Each view's columns have one definition, the projection's row dataclass; the API's answer
and the migrations are held against it, so a column cannot be added in one place only."""

from __future__ import annotations

from dataclasses import fields

from coordinator.api.schemas import StatusResponse, TaskResponse
from projections.status_view import StatusRow
from projections.store import STATUS_TYPES, TASK_TYPES
from projections.task_history import TaskRow

# Row fields the API does not show as they are, and why.
STATUS_NOT_SHOWN = {"last_version": "shown as `version`, the stream version applied"}
TASK_NOT_SHOWN = {
    "user_id": "a task page is the caller's own",
    "last_version": "the projector's checkpoint",
}


def test_the_store_writes_exactly_the_row_fields() -> None:
    assert tuple(STATUS_TYPES) == tuple(f.name for f in fields(StatusRow))
    assert tuple(TASK_TYPES) == tuple(f.name for f in fields(TaskRow))


def test_the_api_shows_every_column_or_says_why_not() -> None:
    for row, response, hidden in (
        (StatusRow, StatusResponse, STATUS_NOT_SHOWN),
        (TaskRow, TaskResponse, TASK_NOT_SHOWN),
    ):
        columns = {f.name for f in fields(row)}
        shown = set(response.model_fields)
        assert columns - set(hidden) <= shown, f"{response.__name__} lacks a column"
        assert set(hidden) <= columns, "a reason given for a column that no longer exists"
    assert "version" in StatusResponse.model_fields
