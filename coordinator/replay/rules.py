"""The per-stream rules of `verify`, fed one stream's events in version order, O(1) memory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from datetime import datetime
from typing import Any

from coordinator.replay.chain import ChainCheck
from coordinator.replay.records import (
    StoredEvent,
    StreamRow,
    UndecodableEvent,
    Violation,
    decode_event,
    show_time,
)
from core.domain.events import (
    CancelRequested,
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
from core.domain.user_sync import UserSyncState, evolve

VERSIONS = "versions-contiguous"
STREAM_VERSION = "stream-version"
SNAPSHOT = "snapshot-equals-fold"
ONE_LIVE = "one-live-task"
REUSE = "reuse-names-live-task"
OPEN_TASK = "names-open-task"
UNDECODABLE = "undecodable-event"
QUEUED_ONCE = "full-sync-queued-once"
CANCEL_PAIR = "cancel-requested-first"
QUEUED_STARTED = "queued-full-sync-started"
FOLLOW_UP_ONCE = "follow-up-queued-once"
FOLLOW_UP_STARTED = "queued-follow-up-started"
# Endings after which a queued sync must start at once (a cancel drops it instead).
HONOURED_BY = (SyncCompleted, SyncFailed, SyncExpired)

Finding = tuple[str, str] | None
Report = (
    SyncProgressed
    | SyncCompleted
    | SyncFailed
    | FullSyncQueued
    | FollowUpSyncQueued
    | CancelRequested
    | SyncCancelled
)


def _started(state: UserSyncState, event: SyncStarted, at: datetime) -> Finding:
    if state.is_live(at):
        return ONE_LIVE, (
            f"task {event.task_id} started while task {state.task_id} was live until "
            f"{show_time(state.lease_expires_at)}"
        )
    return None


def _reused(state: UserSyncState, event: SyncReused, at: datetime) -> Finding:
    if event.task_id != state.task_id:
        return REUSE, f"names task {event.task_id}, but the task started last is {state.task_id}"
    if state.status != "running":
        return REUSE, f"names task {event.task_id}, which had already {state.status}"
    if not state.is_live(at):
        return REUSE, (
            f"names task {event.task_id}, whose lease ran out at "
            f"{show_time(state.lease_expires_at)}"
        )
    return None


def _not_open(state: UserSyncState, task_id: str) -> str | None:
    """Why a task is not the started, unfinished one; None when it is."""
    if state.task_id is None:
        return f"names task {task_id}, but no task was started"
    if task_id != state.task_id:
        return f"names task {task_id}, but the task started last is {state.task_id}"
    if state.status != "running":
        return f"names task {task_id}, which had already {state.status}"
    return None


def _reported(state: UserSyncState, event: Report, at: datetime) -> Finding:
    problem = _not_open(state, event.task_id)
    if problem:
        return OPEN_TASK, problem
    if not state.is_live(at):
        # The aggregate fences reports once the lease has run out.
        return OPEN_TASK, (
            f"task {event.task_id} reported after its lease ran out at "
            f"{show_time(state.lease_expires_at)}: the report should have been fenced"
        )
    return None


def _expired(state: UserSyncState, event: SyncExpired, at: datetime) -> Finding:
    problem = _not_open(state, event.task_id)
    if problem:
        return OPEN_TASK, problem
    if state.is_live(at):
        return OPEN_TASK, (
            f"task {event.task_id} expired while its lease ran until "
            f"{show_time(state.lease_expires_at)}"
        )
    if event.lease_expired_at != state.lease_expires_at:
        return OPEN_TASK, (
            f"says the lease ran out at {show_time(event.lease_expired_at)}, but it ran until "
            f"{show_time(state.lease_expires_at)}"
        )
    return None


def _queued(state: UserSyncState, event: FullSyncQueued, at: datetime) -> Finding:
    reported = _reported(state, event, at)
    if reported is not None:
        return reported
    if state.sync_type != "incremental":
        return QUEUED_ONCE, f"queues a full sync behind task {event.task_id}, a full sync itself"
    if state.full_sync_queued:
        return QUEUED_ONCE, f"queues a second full sync behind task {event.task_id}"
    return None


def _follow_up(state: UserSyncState, event: FollowUpSyncQueued, at: datetime) -> Finding:
    reported = _reported(state, event, at)
    if reported is not None:
        return reported
    if state.follow_up_queued:
        return FOLLOW_UP_ONCE, f"queues a second follow-up sync behind task {event.task_id}"
    if state.full_sync_queued:
        return FOLLOW_UP_ONCE, (
            f"queues a follow-up sync behind task {event.task_id}, which has a full sync queued"
        )
    return None


# Each event type's rule, judged against the state before the event at the event's own time:
# the same clock the aggregate decided with.
LIFECYCLE: dict[type, Callable[[UserSyncState, Any, datetime], Finding]] = {
    SyncStarted: _started,
    SyncReused: _reused,
    SyncProgressed: _reported,
    SyncCompleted: _reported,
    SyncFailed: _reported,
    SyncExpired: _expired,
    FullSyncQueued: _queued,
    FollowUpSyncQueued: _follow_up,
    CancelRequested: _reported,
    SyncCancelled: _reported,
}


def _cancel_pair(previous: Event | None, event: Event) -> str | None:
    """A cancel is recorded as the request and the ending together, in this order."""
    asked = previous.task_id if isinstance(previous, CancelRequested) else None
    if isinstance(event, SyncCancelled) and asked != event.task_id:
        return f"task {event.task_id} was cancelled without a CancelRequested just before"
    if asked is not None and not isinstance(event, SyncCancelled):
        return f"CancelRequested for task {asked} is not followed by its SyncCancelled"
    return None


def _missing(expected: int, found: int) -> str:
    if found < expected:
        return f"version {found} appears again"
    if found == expected + 1:
        return f"version {expected} is missing"
    return f"versions {expected}..{found - 1} are missing"


class StreamCheck:
    """Every per-stream rule over one stream; feed events in version order, then finish."""

    def __init__(self, stream_id: str, stream: StreamRow | None) -> None:
        self.stream_id = stream_id
        self._stream = stream
        self._chain = ChainCheck(stream_id)
        self._state = UserSyncState()
        self._last_version = 0
        self._previous: Event | None = None
        # A task that ended with a sync queued behind it: ("full" | "follow_up", task id).
        self._owed: tuple[str, str] | None = None

    def feed(self, event: StoredEvent) -> list[Violation]:
        """Violations at this event (usually none)."""
        found: list[Violation] = []
        expected = self._last_version + 1
        if event.version != expected:
            found.append(
                Violation(
                    VERSIONS, self.stream_id, event.version, _missing(expected, event.version)
                )
            )
        self._last_version = max(self._last_version, event.version)
        broken = self._chain.feed(event)
        if broken is not None:
            found.append(broken)
        try:
            decoded = decode_event(event)
        except UndecodableEvent as error:
            found.append(Violation(UNDECODABLE, self.stream_id, event.version, str(error)))
            return found
        finding = LIFECYCLE[type(decoded)](self._state, decoded, event.occurred_at)
        if finding is not None:
            found.append(Violation(finding[0], self.stream_id, event.version, finding[1]))
        unpaired = _cancel_pair(self._previous, decoded)
        if unpaired is not None:
            found.append(Violation(CANCEL_PAIR, self.stream_id, event.version, unpaired))
        unstarted = self._queued_start(decoded)
        if unstarted is not None:
            found.append(Violation(unstarted[0], self.stream_id, event.version, unstarted[1]))
        self._owed = self._owed_after(decoded)
        self._state, self._previous = evolve(self._state, decoded), decoded
        return found

    def _owed_after(self, event: Event) -> tuple[str, str] | None:
        """The start a queue makes due when this event ends its task: (kind, task)."""
        if not isinstance(event, HONOURED_BY):
            return None
        if self._state.full_sync_queued:
            return "full", event.task_id
        if self._state.follow_up_queued:
            return "follow_up", event.task_id
        return None

    def _queued_start(self, event: Event) -> tuple[str, str] | None:
        """A queued sync starts right after the task it waited behind ends, and only then: a
        full sync when one was queued, else the follow-up."""
        kind, task = self._owed or (None, None)
        started = event if isinstance(event, SyncStarted) else None
        if kind == "full" and (started is None or started.sync_type != "full"):
            return QUEUED_STARTED, (
                f"a full sync was queued behind task {task}, which ended just before, "
                f"but the next event is {event.event_type}"
            )
        # Any start covers new mail (a click that found the task expired starts it itself).
        if kind == "follow_up" and started is None:
            return FOLLOW_UP_STARTED, (
                f"a follow-up sync was queued behind task {task}, which ended just before, "
                f"but the next event is {event.event_type}"
            )
        if started is not None and started.reason == "queued_full_sync" and kind != "full":
            return QUEUED_STARTED, (
                f"task {started.task_id} says it is a queued full sync, but none was owed"
            )
        if started is not None and started.reason == "queued_follow_up" and kind != "follow_up":
            return FOLLOW_UP_STARTED, (
                f"task {started.task_id} says it is a queued follow-up sync, but none was owed"
            )
        return None

    def finish(self) -> list[Violation]:
        """The stream row against the events: version, chain head, snapshot."""
        last = self._last_version
        stream = self._stream
        if stream is None:
            detail = "events exist but streams has no row for them"
            return [Violation(STREAM_VERSION, self.stream_id, last or None, detail)]
        found: list[Violation] = []
        if stream.version != last:
            detail = f"streams.version is {stream.version}, the last event is version {last}"
            found.append(
                Violation(STREAM_VERSION, self.stream_id, max(stream.version, last), detail)
            )
        head = self._chain.finish(stream, last or None)
        if head is not None:
            found.append(head)
        if self._owed is not None:
            detail = (
                f"a full sync was queued behind task {self._owed}, which ended, and never started"
            )
            found.append(Violation(QUEUED_STARTED, self.stream_id, last, detail))
        mismatch = self._snapshot_mismatch(stream)
        if mismatch:
            found.append(Violation(SNAPSHOT, self.stream_id, stream.version, mismatch))
        return found

    def _snapshot_mismatch(self, stream: StreamRow) -> str | None:
        """How the stream row's snapshot differs from the fold of the events, if it does."""
        try:
            snapshot = UserSyncState.from_json(stream.state) if stream.state else UserSyncState()
        except (TypeError, ValueError) as error:
            return f"the snapshot cannot be read: {error}"
        folded = self._state
        differences = [
            f"{f.name}: snapshot {getattr(snapshot, f.name)!r}, fold {getattr(folded, f.name)!r}"
            for f in fields(UserSyncState)
            if getattr(snapshot, f.name) != getattr(folded, f.name)
        ]
        live_until = folded.lease_expires_at if folded.status == "running" else None
        if stream.live_until != live_until:
            differences.append(
                f"live_until: row {show_time(stream.live_until)}, fold {show_time(live_until)}"
            )
        return "; ".join(differences) or None
