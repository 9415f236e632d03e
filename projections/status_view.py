"""The status view: one row per user describing their latest sync task, as a pure fold."""

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


def apply_status(row: StatusRow | None, envelope: Envelope) -> StatusRow:
    """The user's status after one event; no I/O."""
    event = envelope.data
    if isinstance(event, SyncStarted):
        return StatusRow(
            user_id=envelope.user_id,
            task_id=event.task_id,
            is_syncing=True,
            status="running",
            sync_type=event.sync_type,
            started_at=event.started_at,
            updated_at=envelope.occurred_at,
            lease_expires_at=event.lease_expires_at,
            last_version=envelope.version,
        )
    current = row or StatusRow(user_id=envelope.user_id)
    changes: dict[str, Any] = {"updated_at": envelope.occurred_at, "last_version": envelope.version}
    # The aggregate only emits the other events for its current task; an event naming
    # another task (never expected) must not overwrite what the row says about this one.
    if event.task_id == current.task_id:
        changes.update(_task_changes(event))
    return _evolve(current, changes)


def _evolve(row: StatusRow, changes: dict[str, Any]) -> StatusRow:
    """A copy with these columns changed: dataclasses.replace walks every field and runs the
    frozen __init__ per event, the largest share of the projector's fold."""
    copy = object.__new__(StatusRow)
    copy.__dict__.update(row.__dict__, **changes)
    return copy


def _task_changes(event: Event) -> dict[str, Any]:
    """Columns an event about the row's own task changes."""
    if isinstance(event, SyncReused):
        return {"lease_expires_at": event.lease_expires_at}
    if isinstance(event, SyncProgressed):
        return {
            "progress_percentage": event.percent,
            "current_stats": event.stats,
            "lease_expires_at": event.lease_expires_at,
        }
    if isinstance(event, SyncCompleted):
        return {
            "is_syncing": False,
            "status": "completed",
            "progress_percentage": 100.0,
            "current_stats": event.stats,
        }
    if isinstance(event, SyncFailed):
        return {"is_syncing": False, "status": "failed", "error_message": event.error}
    if isinstance(event, SyncExpired):
        return {"is_syncing": False, "status": "expired"}
    if isinstance(event, FullSyncQueued):
        return {"full_sync_queued": True}
    if isinstance(event, CancelRequested):
        return {}
    if isinstance(event, SyncCancelled):
        return {"is_syncing": False, "status": "cancelled", "full_sync_queued": False}
    raise TypeError(f"unknown event {event!r}")
