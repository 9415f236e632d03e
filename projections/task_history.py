"""The task history: one row per sync task ever started, as a pure fold."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import MISSING, dataclass, field, fields
from datetime import datetime
from typing import Any, assert_never

from core.domain.events import (
    CancelRequested,
    Envelope,
    Event,
    FollowUpSyncQueued,
    FullSyncQueued,
    SyncCancelled,
    SyncCompleted,
    SyncExpired,
    SyncFailed,
    SyncProgressed,
    SyncReused,
    SyncStarted,
)
from core.domain.frozen import frozen_from_fields


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
    return fold_task(row, (envelope,))


def fold_task(row: TaskRow | None, envelopes: Iterable[Envelope]) -> TaskRow | None:
    """The task's row after these events about it, in order (apply_task over each, copying
    the row once instead of once per event); None while the task was never started."""
    values = dict(row.__dict__) if row else None
    changed = False
    for envelope in envelopes:
        event = envelope.data
        if isinstance(event, SyncStarted):
            values = {
                **_EMPTY,
                "task_id": event.task_id,
                "user_id": envelope.user_id,
                "sync_type": event.sync_type,
                "status": "running",
                "started_at": event.started_at,
                "lease_expires_at": event.lease_expires_at,
                "stats": {},
                "replaces_task_id": event.replaces_task_id,
                "start_reason": event.reason,
                "last_version": envelope.version,
            }
        elif values is not None:
            values.update(_changes(values, event))
            values["last_version"] = envelope.version
        changed = changed or values is not None
    if values is None or not changed:
        return row
    return frozen_from_fields(TaskRow, values)


# Every column, in field order like a row built by its __init__: the defaults, and None
# for those a start sets.
_EMPTY = {f.name: None if f.default is MISSING else f.default for f in fields(TaskRow)}


def _changes(row: dict[str, Any], event: Event) -> dict[str, Any]:
    """Columns a later event about the task changes."""
    match event:
        case SyncReused():
            return {"reuse_count": row["reuse_count"] + 1}
        case SyncProgressed():
            return {
                "progress_percentage": event.percent,
                "stats": event.stats,
                "lease_expires_at": event.lease_expires_at,
            }
        case SyncCompleted():
            return {
                "status": "completed",
                "finished_at": event.finished_at,
                "progress_percentage": 100.0,
                "stats": event.stats,
            }
        case SyncFailed():
            return {
                "status": "failed",
                "finished_at": event.finished_at,
                "error_message": event.error,
            }
        case SyncExpired():
            # A task is dead from the moment its lease ran out, not from when that was noticed.
            return {"status": "expired", "finished_at": event.lease_expired_at}
        case SyncCancelled():
            return {"status": "cancelled", "finished_at": event.finished_at}
        case FullSyncQueued() | FollowUpSyncQueued() | CancelRequested():
            return {}
        case SyncStarted():  # a start makes a new row (fold_task)
            raise TypeError(f"a start is no change to a row: {event!r}")
        case _:
            assert_never(event)
