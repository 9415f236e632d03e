"""The status view: one row per user describing their latest sync task, as a pure fold."""

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
class StatusRow:
    """A row of `sync_status`; last_version is the projector's checkpoint for the user."""

    user_id: str
    task_id: str | None = None
    is_syncing: bool = False
    status: str = "none"
    sync_type: str | None = None
    started_at: datetime | None = None
    updated_at: datetime | None = None
    lease_expires_at: datetime | None = None
    progress_percentage: float = 0.0
    current_stats: dict[str, Any] = field(default_factory=dict)
    error_message: str | None = None
    full_sync_queued: bool = False
    last_version: int = 0
    follow_up_queued: bool = False


def apply_status(row: StatusRow | None, envelope: Envelope) -> StatusRow:
    """The user's status after one event; no I/O."""
    return _row(_step(dict(row.__dict__) if row else None, envelope))


def fold_status(row: StatusRow | None, envelopes: Iterable[Envelope]) -> StatusRow | None:
    """The user's status after these events in order (apply_status over each, copying the
    row once instead of once per event); the row itself when there are none."""
    values = dict(row.__dict__) if row else None
    stepped = False
    for envelope in envelopes:
        values, stepped = _step(values, envelope), True
    return _row(values) if stepped and values is not None else row


def _step(values: dict[str, Any] | None, envelope: Envelope) -> dict[str, Any]:
    """One event into a row's column values, changed in place unless the event starts a task."""
    event = envelope.data
    if isinstance(event, SyncStarted):
        return {
            **_EMPTY,
            "user_id": envelope.user_id,
            "task_id": event.task_id,
            "is_syncing": True,
            "status": "running",
            "sync_type": event.sync_type,
            "started_at": event.started_at,
            "updated_at": envelope.occurred_at,
            "lease_expires_at": event.lease_expires_at,
            "current_stats": {},
            "last_version": envelope.version,
        }
    if values is None:
        values = {**_EMPTY, "user_id": envelope.user_id, "current_stats": {}}
    values["updated_at"] = envelope.occurred_at
    values["last_version"] = envelope.version
    # The aggregate only emits the other events for its current task; an event naming
    # another task (never expected) must not overwrite what the row says about this one.
    if event.task_id == values["task_id"]:
        values.update(_task_changes(event))
    return values


# Every column, in field order like a row built by its __init__: the defaults, and None
# for user_id and current_stats, which each row sets.
_EMPTY = {f.name: None if f.default is MISSING else f.default for f in fields(StatusRow)}


def _row(values: dict[str, Any]) -> StatusRow:
    """A row from all its column values (dataclasses.replace walked every field and ran it
    per event, the largest share of the projector's fold)."""
    return frozen_from_fields(StatusRow, values)


def _task_changes(event: Event) -> dict[str, Any]:
    """Columns an event about the row's own task changes."""
    match event:
        case SyncReused():
            return {"lease_expires_at": event.lease_expires_at}
        case SyncProgressed():
            return {
                "progress_percentage": event.percent,
                "current_stats": event.stats,
                "lease_expires_at": event.lease_expires_at,
            }
        case SyncCompleted():
            return {
                "is_syncing": False,
                "status": "completed",
                "progress_percentage": 100.0,
                "current_stats": event.stats,
            }
        case SyncFailed():
            return {"is_syncing": False, "status": "failed", "error_message": event.error}
        case SyncExpired():
            return {"is_syncing": False, "status": "expired"}
        case FullSyncQueued():
            return {"full_sync_queued": True}
        case FollowUpSyncQueued():
            return {"follow_up_queued": True}
        case CancelRequested():
            return {}
        case SyncCancelled():
            return {
                "is_syncing": False,
                "status": "cancelled",
                "full_sync_queued": False,
                "follow_up_queued": False,
            }
        case SyncStarted():  # a start makes a new row (_step)
            raise TypeError(f"a start is no change to a row: {event!r}")
        case _:
            assert_never(event)
