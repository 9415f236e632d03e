"""The task history: one row per sync task ever started, as a pure fold."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from coordinator.domain.events import (
    CancelRequested,
    Envelope,
    Event,
    FullSyncQueued,
    SyncCancelled,
    SyncCompleted,
    SyncExpired,
    SyncFailed,
    SyncProgressed,
    SyncReused,
    SyncStarted,
)


@dataclass(frozen=True)
class TaskRow:
    """A row of `sync_tasks`; last_version is the version of the last event about the task."""

    task_id: str
    user_id: str
    sync_type: str
    status: str
    started_at: datetime
    finished_at: datetime | None = None
    lease_expires_at: datetime | None = None
    reuse_count: int = 0
    progress_percentage: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)
    error_message: str | None = None
    replaces_task_id: str | None = None
    start_reason: str | None = None
    last_version: int = 0


def apply_task(row: TaskRow | None, envelope: Envelope) -> TaskRow | None:
    """The named task's row after one event; None if the task was never started; no I/O."""
    event = envelope.data
    if isinstance(event, SyncStarted):
        return TaskRow(
            task_id=event.task_id,
            user_id=envelope.user_id,
            sync_type=event.sync_type,
            status="running",
            started_at=event.started_at,
            lease_expires_at=event.lease_expires_at,
            replaces_task_id=event.replaces_task_id,
            start_reason=event.reason,
            last_version=envelope.version,
        )
    if row is None:
        return None
    return _evolve(row, {**_changes(row, event), "last_version": envelope.version})


def _evolve(row: TaskRow, changes: dict[str, Any]) -> TaskRow:
    """A copy with these columns changed: dataclasses.replace walks every field and runs the
    frozen __init__ per event, the largest share of the projector's fold."""
    copy = object.__new__(TaskRow)
    copy.__dict__.update(row.__dict__, **changes)
    return copy


def _changes(row: TaskRow, event: Event) -> dict[str, Any]:
    """Columns a later event about the task changes."""
    if isinstance(event, SyncReused):
        return {"reuse_count": row.reuse_count + 1}
    if isinstance(event, SyncProgressed):
        return {
            "progress_percentage": event.percent,
            "stats": event.stats,
            "lease_expires_at": event.lease_expires_at,
        }
    if isinstance(event, SyncCompleted):
        return {
            "status": "completed",
            "finished_at": event.finished_at,
            "progress_percentage": 100.0,
            "stats": event.stats,
        }
    if isinstance(event, SyncFailed):
        return {"status": "failed", "finished_at": event.finished_at, "error_message": event.error}
    if isinstance(event, SyncExpired):
        # A task is dead from the moment its lease ran out, not from when that was noticed.
        return {"status": "expired", "finished_at": event.lease_expired_at}
    if isinstance(event, SyncCancelled):
        return {"status": "cancelled", "finished_at": event.finished_at}
    if isinstance(event, FullSyncQueued | CancelRequested):
        return {}
    raise TypeError(f"unknown event {event!r}")
