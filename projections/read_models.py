"""Queries over the projected views (sync_status, sync_tasks) for the read API and /metrics."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, text

from core.database import translated_errors

STATUS = text("SELECT * FROM sync_status WHERE user_id = :user_id")
STATUSES = text("SELECT * FROM sync_status WHERE user_id = ANY(:user_ids)")
TASK = text("SELECT * FROM sync_tasks WHERE task_id = :task_id AND user_id = :user_id")
RECENT_TASKS = text(
    "SELECT * FROM sync_tasks WHERE user_id = :user_id "
    "AND (CAST(:before_started AS timestamptz) IS NULL "
    "     OR (started_at, task_id) < (CAST(:before_started AS timestamptz), :before_task)) "
    "ORDER BY started_at DESC, task_id DESC LIMIT :limit"
)
TASK_COUNTS = text("SELECT status, count(*) AS n FROM sync_tasks GROUP BY status")
LAG = text("SELECT consumer_group, topic, partition, lag FROM projection_lag")


class ReadModels:
    """Read-only access to the views the projector maintains."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def status(self, user_id: str) -> dict[str, Any] | None:
        """The user's status row, or None before the projector has seen them."""
        with translated_errors(), self._engine.connect() as conn:
            row = conn.execute(STATUS, {"user_id": user_id}).mappings().one_or_none()
        return dict(row) if row else None

    def statuses(self, user_ids: list[str]) -> list[dict[str, Any]]:
        """The status rows of these users that exist, in one read (for the status streams)."""
        with translated_errors(), self._engine.connect() as conn:
            rows = conn.execute(STATUSES, {"user_ids": user_ids}).mappings().all()
        return [dict(r) for r in rows]

    def task(self, user_id: str, task_id: str) -> dict[str, Any] | None:
        """One of the user's tasks; another user's task is None, like a missing one."""
        with translated_errors(), self._engine.connect() as conn:
            row = conn.execute(TASK, {"user_id": user_id, "task_id": task_id}).mappings()
            found = row.one_or_none()
        return dict(found) if found else None

    def recent_tasks(
        self, user_id: str, limit: int, before: tuple[datetime, str] | None
    ) -> list[dict[str, Any]]:
        """Newest first, keyset-paginated by (started_at, task_id)."""
        params = {
            "user_id": user_id,
            "limit": limit,
            "before_started": before[0] if before else None,
            "before_task": before[1] if before else "",
        }
        with translated_errors(), self._engine.connect() as conn:
            rows = conn.execute(RECENT_TASKS, params).mappings().all()
        return [dict(r) for r in rows]

    def task_counts(self) -> dict[str, int]:
        """Tasks per status across all users."""
        with translated_errors(), self._engine.connect() as conn:
            return {r.status: int(r.n) for r in conn.execute(TASK_COUNTS)}

    def projection_lag(self) -> list[tuple[str, str, int, int]]:
        """(group, topic, partition, lag) as the projector last reported it."""
        with translated_errors(), self._engine.connect() as conn:
            return [(r[0], r[1], int(r[2]), int(r[3])) for r in conn.execute(LAG)]
