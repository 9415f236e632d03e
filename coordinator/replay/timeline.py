"""The audit timeline: each event's decision in words; runs of reuses collapse in tables."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, assert_never

from coordinator.replay.records import StoredEvent, UndecodableEvent, decode_event, show_time
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
from core.domain.user_sync import UserSyncState
from core.telemetry.traceparent import trace_id_of


def reason(event: Event) -> str:
    """Why the aggregate recorded this event, in words."""
    match event:
        case SyncStarted():
            said = "started"
            if event.reason == "queued_full_sync":
                said = "started the full sync that was queued behind the task before"
            if event.reason == "queued_follow_up":
                said = "started the follow-up sync new mail queued behind the task before"
            if event.reason == "new_mail":
                said = "started because a watcher noticed new mail"
            if event.replaces_task_id:
                said += f" replacing task {event.replaces_task_id}"
            return said + (f" (client {event.requested_by})" if event.requested_by else "")
        case SyncReused():
            until = show_time(event.lease_expires_at)
            return f"reused because task {event.task_id} is live until {until}"
        case SyncExpired():
            return (
                f"expired because the lease ran out at {show_time(event.lease_expired_at)} "
                f"(detected by {event.detected_by})"
            )
        case SyncProgressed():
            return (
                f"progress {event.percent:g}% renewed lease to {show_time(event.lease_expires_at)}"
            )
        case SyncCompleted():
            return "completed"
        case SyncFailed():
            return f"failed: {event.error}"
        case FullSyncQueued():
            return f"full sync queued: it starts when incremental task {event.task_id} ends"
        case FollowUpSyncQueued():
            return f"new mail noticed: an incremental sync starts when task {event.task_id} ends"
        case CancelRequested():
            return "cancel requested by the task's owner"
        case SyncCancelled():
            dropped = (
                "; the queued full sync was dropped with it" if event.dropped_full_sync else ""
            )
            if event.dropped_follow_up:
                dropped += "; the queued follow-up sync was dropped with it"
            return f"cancelled at the owner's request{dropped}"
        case _:
            assert_never(event)


@dataclass(frozen=True)
class Entry:
    """One event of the timeline."""

    time: datetime
    version: int
    event_type: str
    task_id: str
    correlation_id: str
    causation_id: str
    event_id: str
    reason: str
    data: dict[str, Any]
    trace_id: str | None = None  # of the command's trace, when it was traced

    def to_json(self) -> dict[str, Any]:
        """Every field, times in full precision, UTC."""
        return {
            "time": self.time.astimezone(UTC).isoformat(),
            "version": self.version,
            "event_type": self.event_type,
            "task_id": self.task_id,
            "correlation_id": self.correlation_id,
            "trace_id": self.trace_id,
            "causation_id": self.causation_id,
            "event_id": self.event_id,
            "reason": self.reason,
            "data": self.data,
        }


def entry(stored: StoredEvent) -> Entry:
    """The timeline entry of a stored event; an unreadable one says so instead of failing."""
    try:
        said = reason(decode_event(stored))
    except UndecodableEvent as error:
        said = f"cannot be read: {error}"
    return Entry(
        time=stored.occurred_at,
        version=stored.version,
        event_type=stored.event_type,
        task_id=str(stored.data.get("task_id", "-")),
        correlation_id=str(stored.metadata.get("correlation_id", "-")),
        causation_id=str(stored.metadata.get("causation_id", "-")),
        event_id=stored.event_id,
        reason=said,
        data=stored.data,
        trace_id=trace_id_of(stored.metadata.get("traceparent")),
    )


@dataclass(frozen=True)
class Line:
    """One line of the table: an event, or a run of reuses of one task."""

    time: str
    versions: str
    event: str
    task_id: str
    correlation_id: str
    trace_id: str
    reason: str


HEADER = Line("TIME", "VERSION", "EVENT", "TASK", "CORRELATION", "TRACE", "REASON")


def format_line(line: Line) -> str:
    """Fixed columns (the output streams, so widths cannot follow the data)."""
    return (
        f"{line.time:<24}  {line.versions:>7}  {line.event:<14}  {line.task_id:<37}  "
        f"{line.correlation_id:<36}  {line.trace_id:<32}  {line.reason}"
    )


def _line(first: Entry, last: Entry, count: int) -> Line:
    if count == 1:
        return Line(
            show_time(first.time),
            str(first.version),
            first.event_type,
            first.task_id,
            first.correlation_id,
            first.trace_id or "-",
            first.reason,
        )
    return Line(
        show_time(first.time),
        f"{first.version}-{last.version}",
        f"SyncReused x{count}",
        first.task_id,
        f"{first.correlation_id} +{count - 1}",
        first.trace_id or "-",
        f"{last.reason} (last at {show_time(last.time)})",
    )


def collapse(entries: Iterable[Entry]) -> Iterator[Line]:
    """Table lines: consecutive reuses of one task become one line with a count."""
    run: tuple[Entry, Entry, int] | None = None
    for current in entries:
        if run is not None:
            first, last, count = run
            if current.event_type == SyncReused.event_type and current.task_id == first.task_id:
                run = (first, current, count + 1)
                continue
            yield _line(first, last, count)
            run = None
        if current.event_type == SyncReused.event_type:
            run = (current, current, 1)
        else:
            yield _line(current, current, 1)
    if run is not None:
        yield _line(*run)


def state_lines(state: UserSyncState, as_of: datetime, version: int) -> list[str]:
    """The aggregate's state at a moment, for the table format."""
    live = "live" if state.is_live(as_of) else "not live"
    return [
        f"state as of {show_time(as_of)} (after version {version})",
        f"  task         {state.task_id or '-'}",
        f"  status       {state.status} ({live} at that moment)",
        f"  sync type    {state.sync_type or '-'}",
        f"  started at   {show_time(state.started_at)}",
        f"  lease until  {show_time(state.lease_expires_at)}",
        f"  reused       {state.reuse_count} times",
        f"  progress     {state.percent:g}%",
        f"  full queued  {'yes' if state.full_sync_queued else 'no'}",
        f"  follow-up    {'yes' if state.follow_up_queued else 'no'}",
    ]


def state_json(state: UserSyncState, as_of: datetime, version: int) -> dict[str, Any]:
    """The aggregate's state at a moment, for the JSON format."""
    return {
        "time": as_of.astimezone(UTC).isoformat(),
        "version": version,
        "live": state.is_live(as_of),
        "state": state.to_json(),
    }
