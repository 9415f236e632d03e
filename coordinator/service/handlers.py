"""Command handlers: load the aggregate under its lock, decide, append, answer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from coordinator.domain.commands import (
    CompleteSync,
    ExpireStaleSync,
    FailSync,
    ReportProgress,
    StartRequested,
    TaskCommand,
)
from coordinator.domain.events import SyncExpired, SyncReused
from coordinator.domain.user_sync import decide
from coordinator.service.ports import (
    ConcurrencyConflict,
    ConflictRetriesExhausted,
    EventStore,
)

T = TypeVar("T")


class IdempotencyKeyReused(Exception):
    """An idempotency key came back with different request parameters."""


@dataclass(frozen=True)
class StartOutcome:
    """What a start command decided, as the caller needs to know it."""

    task_id: str
    sync_type: str
    started_at: datetime
    lease_expires_at: datetime
    reused: bool
    version: int
    expired_task_id: str | None = None
    replayed: bool = False

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["started_at"] = self.started_at.isoformat()
        body["lease_expires_at"] = self.lease_expires_at.isoformat()
        del body["replayed"]
        return body

    @classmethod
    def from_json(cls, body: dict[str, Any], *, replayed: bool) -> StartOutcome:
        return cls(
            task_id=body["task_id"],
            sync_type=body["sync_type"],
            started_at=datetime.fromisoformat(body["started_at"]),
            lease_expires_at=datetime.fromisoformat(body["lease_expires_at"]),
            reused=body["reused"],
            version=body["version"],
            expired_task_id=body.get("expired_task_id"),
            replayed=replayed,
        )


@dataclass(frozen=True)
class Dependencies:
    """What handlers are given by the composition root."""

    store: EventStore
    lease: timedelta
    conflict_retries: int
    on_conflict: Callable[[], None] = lambda: None


def _with_retries(user_id: str, deps: Dependencies, attempt: Callable[[], T]) -> T:
    """Run one locked attempt; decide again on a version conflict, a bounded number of times."""
    for _ in range(deps.conflict_retries + 1):
        try:
            return attempt()
        except ConcurrencyConflict:
            deps.on_conflict()
            continue
    raise ConflictRetriesExhausted(
        f"stream of user {user_id!r} kept moving; gave up after "
        f"{deps.conflict_retries + 1} attempts"
    )


def start_sync(command: StartRequested, deps: Dependencies) -> StartOutcome:
    """Start a sync for the user, or join the live one."""
    return _with_retries(command.user_id, deps, lambda: _start_once(command, deps))


def _start_once(command: StartRequested, deps: Dependencies) -> StartOutcome:
    key = command.meta.idempotency_key
    fingerprint = f"force_full={command.force_full}"
    with deps.store.lock_stream(command.user_id) as stream:
        if key is not None:
            prior = stream.recall_response(key)
            if prior is not None:
                if prior[0] != fingerprint:
                    raise IdempotencyKeyReused(
                        f"Idempotency-Key {key!r} was first used with {prior[0]}, not {fingerprint}"
                    )
                return StartOutcome.from_json(prior[1], replayed=True)
        events = decide(stream.state, command, stream.now, deps.lease)
        stored = stream.append(events, command.meta)
        state = stream.state
        assert state.task_id and state.sync_type and state.started_at and state.lease_expires_at
        outcome = StartOutcome(
            task_id=state.task_id,
            sync_type=state.sync_type,
            started_at=state.started_at,
            lease_expires_at=state.lease_expires_at,
            reused=isinstance(events[-1], SyncReused),
            version=stored[-1].version,
            expired_task_id=next((e.task_id for e in events if isinstance(e, SyncExpired)), None),
        )
        if key is not None:
            stream.remember_response(key, fingerprint, outcome.to_json())
        return outcome


@dataclass(frozen=True)
class TaskOutcome:
    """What a worker's report changed."""

    task_id: str
    status: str
    version: int
    lease_expires_at: datetime | None


def _record(command: TaskCommand | ExpireStaleSync, deps: Dependencies) -> TaskOutcome:
    """Decide and append under the lock; TaskFenced passes through to the caller."""

    def attempt() -> TaskOutcome:
        with deps.store.lock_stream(command.user_id) as stream:
            events = decide(stream.state, command, stream.now, deps.lease)
            if events:
                stream.append(events, command.meta)
            state = stream.state
            return TaskOutcome(
                task_id=getattr(command, "task_id", state.task_id or ""),
                status=state.status,
                version=stream.version,
                lease_expires_at=state.lease_expires_at,
            )

    return _with_retries(command.user_id, deps, attempt)


def report_progress(command: ReportProgress, deps: Dependencies) -> TaskOutcome:
    """Record progress of the live task and renew its lease."""
    return _record(command, deps)


def complete_sync(command: CompleteSync, deps: Dependencies) -> TaskOutcome:
    """Record that the live task finished."""
    return _record(command, deps)


def fail_sync(command: FailSync, deps: Dependencies) -> TaskOutcome:
    """Record that the live task gave up."""
    return _record(command, deps)


def expire_stale_sync(command: ExpireStaleSync, deps: Dependencies) -> TaskOutcome:
    """Expire the user's task if its lease ran out; a task renewed meanwhile is left alone."""
    return _record(command, deps)


Handler = Callable[[Any, Dependencies], Any]
HANDLERS: dict[type, Handler] = {
    StartRequested: start_sync,
    ReportProgress: report_progress,
    CompleteSync: complete_sync,
    FailSync: fail_sync,
    ExpireStaleSync: expire_stale_sync,
}
