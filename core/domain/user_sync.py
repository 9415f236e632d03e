"""The UserSync aggregate: decide(state, command, now) -> events; evolve(state, event) -> state."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from typing import Any, Literal, assert_never
from uuid import uuid4

from core.domain.commands import (
    CancelSync,
    Command,
    CompleteSync,
    ExpireStaleSync,
    FailSync,
    ReportProgress,
    StartRequested,
)
from core.domain.events import (
    CancelRequested,
    Event,
    FollowUpSyncQueued,
    FullSyncQueued,
    StartReason,
    SyncCancelled,
    SyncCompleted,
    SyncExpired,
    SyncFailed,
    SyncProgressed,
    SyncReused,
    SyncStarted,
    SyncType,
)

TaskStatus = Literal["none", "running", "expired", "completed", "failed", "cancelled"]


class TaskFenced(Exception):
    """A command named a task that is not the live one; its worker must stop."""

    def __init__(self, task_id: str, reason: str) -> None:
        super().__init__(f"task {task_id} is not the live task: {reason}")
        self.task_id = task_id
        self.reason = reason


class TaskEnded(Exception):
    """A cancel named a task of this user that has already ended; `status` says how."""

    def __init__(self, task_id: str, status: str) -> None:
        super().__init__(f"task {task_id} has already ended: it is {status}")
        self.task_id = task_id
        self.status = status


class TaskNotFound(Exception):
    """A cancel named a task this user never had (another user's task is not found either)."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"no task {task_id} for this user")
        self.task_id = task_id


# The status a task ended with, by the event that ended it.
ENDED_BY: dict[str, TaskStatus] = {
    "SyncCompleted": "completed",
    "SyncFailed": "failed",
    "SyncExpired": "expired",
    "SyncCancelled": "cancelled",
}


def stream_id_for(user_id: str) -> str:
    """Each user has exactly one UserSync stream."""
    return f"UserSync-{user_id}"


def new_task_id() -> str:
    """A fresh task id; opaque to callers."""
    return f"sync_{uuid4().hex}"


@dataclass(frozen=True)
class UserSyncState:
    """What the aggregate remembers about a user's latest task."""

    task_id: str | None = None
    sync_type: SyncType | None = None
    status: TaskStatus = "none"
    started_at: datetime | None = None
    lease_expires_at: datetime | None = None
    reuse_count: int = 0
    percent: float = 0.0
    full_sync_queued: bool = False
    queued_by: str | None = None  # the client that asked for the queued full sync
    follow_up_queued: bool = False  # an incremental sync starts when this task ends

    def is_live(self, now: datetime) -> bool:
        """Live = not finished and the lease has not run out yet."""
        return (
            self.status == "running"
            and self.lease_expires_at is not None
            and now < self.lease_expires_at
        )

    def to_json(self) -> dict[str, Any]:
        """The state as a JSON snapshot for the stream row."""
        values = ((f.name, getattr(self, f.name)) for f in fields(self))
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in values}

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> UserSyncState:
        """Rebuild the state from a snapshot written by to_json."""
        times = {"started_at", "lease_expires_at"}
        values: dict[str, Any] = {
            k: datetime.fromisoformat(v) if k in times and v is not None else v
            for k, v in body.items()
        }
        return cls(**values)


def decide(
    state: UserSyncState,
    command: Command,
    now: datetime,
    lease: timedelta,
    make_task_id: Callable[[], str] = new_task_id,
) -> list[Event]:
    """The events a command causes; raises TaskFenced for a task that is not live."""
    if isinstance(command, StartRequested):
        return _start(state, command, now, lease, make_task_id)
    if isinstance(command, ExpireStaleSync):
        expired = _expire_if_dead(state, now, detected_by="reaper")
        return _then_queued(state, expired, now, lease, make_task_id)
    if isinstance(command, CancelSync):
        return _cancel(state, command, now)
    _fence(state, command, now)
    if isinstance(command, ReportProgress):
        return [
            SyncProgressed(
                task_id=command.task_id,
                percent=command.percent,
                stats=command.stats,
                lease_expires_at=now + lease,
            )
        ]
    ending: Event
    if isinstance(command, CompleteSync):
        ending = SyncCompleted(task_id=command.task_id, stats=command.stats, finished_at=now)
    else:
        ending = SyncFailed(task_id=command.task_id, error=command.error, finished_at=now)
    return _then_queued(state, [ending], now, lease, make_task_id)


def _start(
    state: UserSyncState,
    command: StartRequested,
    now: datetime,
    lease: timedelta,
    make_task_id: Callable[[], str],
) -> list[Event]:
    """Join the live task, or record the dead one's expiry and start a new task."""
    requested: SyncType = "full" if command.force_full else "incremental"
    if state.is_live(now):
        assert state.task_id and state.sync_type and state.started_at and state.lease_expires_at
        reused = SyncReused(
            task_id=state.task_id,
            sync_type=state.sync_type,
            requested_sync_type=requested,
            started_at=state.started_at,
            lease_expires_at=state.lease_expires_at,
        )
        if waits_for_full_sync(state, command.force_full) and not state.full_sync_queued:
            return [reused, FullSyncQueued(task_id=state.task_id, requested_by=command.meta.client)]
        if needs_follow_up(state, command):
            return [reused, FollowUpSyncQueued(task_id=state.task_id, trigger=command.trigger)]
        return [reused]
    expired = _expire_if_dead(state, now, detected_by="start")
    reason: StartReason = "replaced_expired" if expired else "first_click"
    started = SyncStarted(
        task_id=make_task_id(),
        # A full sync that waited behind the dead task is not dropped by this click.
        sync_type="full" if state.full_sync_queued else requested,
        started_at=now,
        lease_expires_at=now + lease,
        replaces_task_id=state.task_id if expired else None,
        reason="new_mail" if command.trigger == "new_mail" else reason,
        requested_by=command.meta.client,
    )
    return [*expired, started]


def needs_follow_up(state: UserSyncState, command: StartRequested) -> bool:
    """A new-mail notice during a sync queues one incremental behind it (invariant 12): the
    running sync may have passed INBOX already. A queued full sync covers it too."""
    return (
        command.trigger != "click"
        and not state.follow_up_queued
        and not state.full_sync_queued
        and not command.force_full
    )


def _then_queued(
    state: UserSyncState,
    ending: list[Event],
    now: datetime,
    lease: timedelta,
    make_task_id: Callable[[], str],
) -> list[Event]:
    """The ending, then the sync that waited behind the task (a queued full sync, else a
    queued follow-up), started by the coordinator.

    In the same command as the ending, so the queued request cannot be lost between the two.
    """
    if not ending or not (state.full_sync_queued or state.follow_up_queued):
        return ending
    expired = isinstance(ending[0], SyncExpired)
    full = state.full_sync_queued
    started = SyncStarted(
        task_id=make_task_id(),
        sync_type="full" if full else "incremental",
        started_at=now,
        lease_expires_at=now + lease,
        replaces_task_id=state.task_id if expired else None,
        reason="queued_full_sync" if full else "queued_follow_up",
        requested_by=state.queued_by if full else None,
    )
    return [*ending, started]


def waits_for_full_sync(state: UserSyncState, force_full: bool) -> bool:
    """A full sync asked for while an incremental one runs waits behind it."""
    return force_full and state.status == "running" and state.sync_type == "incremental"


def _cancel(state: UserSyncState, command: CancelSync, now: datetime) -> list[Event]:
    """Stop the live task: the request and the ending, recorded together (docs/events.md)."""
    if command.task_id != state.task_id:
        raise TaskFenced(command.task_id, f"the live task is {state.task_id or 'none'}")
    if state.status != "running":
        raise TaskEnded(command.task_id, state.status)
    if not state.is_live(now):
        raise TaskEnded(command.task_id, "expired")
    return [
        CancelRequested(task_id=command.task_id, requested_by=command.meta.client),
        SyncCancelled(
            task_id=command.task_id,
            finished_at=now,
            dropped_full_sync=state.full_sync_queued,
            dropped_follow_up=state.follow_up_queued,
        ),
    ]


def _expire_if_dead(
    state: UserSyncState, now: datetime, detected_by: Literal["start", "reaper"]
) -> list[Event]:
    """SyncExpired for a running task whose lease has run out; nothing otherwise."""
    if state.status != "running" or state.is_live(now):
        return []
    assert state.task_id and state.lease_expires_at
    return [
        SyncExpired(
            task_id=state.task_id, lease_expired_at=state.lease_expires_at, detected_by=detected_by
        )
    ]


def _fence(
    state: UserSyncState, command: ReportProgress | CompleteSync | FailSync, now: datetime
) -> None:
    if command.task_id != state.task_id:
        raise TaskFenced(command.task_id, f"the live task is {state.task_id or 'none'}")
    if state.status != "running":
        raise TaskFenced(command.task_id, f"it is {state.status}")
    if not state.is_live(now):
        raise TaskFenced(command.task_id, "its lease ran out")


NOTHING_QUEUED: dict[str, Any] = {
    "full_sync_queued": False,
    "queued_by": None,
    "follow_up_queued": False,
}


def evolve(state: UserSyncState, event: Event) -> UserSyncState:
    """Apply one event to the state."""
    match event:
        case SyncStarted():
            return UserSyncState(
                task_id=event.task_id,
                sync_type=event.sync_type,
                status="running",
                started_at=event.started_at,
                lease_expires_at=event.lease_expires_at,
            )
        case SyncReused():
            return replace(state, reuse_count=state.reuse_count + 1)
        case SyncProgressed():
            return replace(state, percent=event.percent, lease_expires_at=event.lease_expires_at)
        # An ending clears the queue: the queued sync starts with it (the next event) or is dropped.
        case SyncExpired():
            return replace(state, status="expired", **NOTHING_QUEUED)
        case SyncCompleted():
            return replace(state, status="completed", percent=100.0, **NOTHING_QUEUED)
        case SyncFailed():
            return replace(state, status="failed", **NOTHING_QUEUED)
        case FullSyncQueued():
            return replace(state, full_sync_queued=True, queued_by=event.requested_by)
        case FollowUpSyncQueued():
            return replace(state, follow_up_queued=True)
        case CancelRequested():
            return state
        case SyncCancelled():
            return replace(state, status="cancelled", **NOTHING_QUEUED)
        case _:
            assert_never(event)


def fold(events: Iterable[Event], state: UserSyncState | None = None) -> UserSyncState:
    """The state after applying events in order."""
    current = state or UserSyncState()
    for event in events:
        current = evolve(current, event)
    return current
