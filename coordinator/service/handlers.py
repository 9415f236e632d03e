"""Command handlers: under one lock of a user's stream, decide each command, append, answer.

A batch is one user's commands in arrival order (see `coalescer.py`): the stream is locked
once, each command is decided against the state the ones before it left, everything is
written and committed once, and each command gets its own outcome or its own rejection.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from coordinator.service.outcomes import Outcome, StartOutcome, TaskOutcome
from coordinator.service.ports import (
    ConflictRetriesExhausted,
    EventStore,
    EventTooLarge,
    LockedStream,
    Lookups,
)
from core.domain.commands import (
    CancelSync,
    Command,
    CompleteSync,
    ExpireStaleSync,
    FailSync,
    ReportProgress,
    StartRequested,
)
from core.domain.events import SyncExpired, SyncReused
from core.domain.user_sync import (
    ENDED_BY,
    TaskEnded,
    TaskFenced,
    TaskNotFound,
    decide,
    waits_for_full_sync,
)
from core.store_errors import ConcurrencyConflict

__all__ = [
    "HANDLERS",
    "Dependencies",
    "StartOutcome",
    "TaskOutcome",
    "handle",
    "handle_batch",
]


class IdempotencyKeyReused(Exception):
    """An idempotency key came back with different request parameters."""


# What one command of a batch may be answered with, without failing the others.
REJECTIONS = (TaskFenced, TaskEnded, TaskNotFound, IdempotencyKeyReused, EventTooLarge)


@dataclass(frozen=True)
class Dependencies:
    """What handlers are given by the composition root."""

    store: EventStore
    lease: timedelta
    conflict_retries: int
    on_conflict: Callable[[], None] = lambda: None


async def handle_batch(
    commands: Sequence[Command], deps: Dependencies
) -> list[Outcome | Exception]:
    """One transaction for one user's commands; store errors fail the whole batch."""
    user_id, lookups = _batch_of(commands)
    for _ in range(deps.conflict_retries + 1):
        try:
            async with deps.store.lock_stream(user_id, lookups) as stream:
                answers = decide_batch(stream, commands, deps)
            return answers
        except ConcurrencyConflict:
            deps.on_conflict()
    raise _gave_up(user_id, deps)


def decide_batch(
    stream: LockedStream, commands: Sequence[Command], deps: Dependencies
) -> list[Outcome | Exception]:
    """Each command in turn against the state the ones before it left; rejections answered."""
    answers: list[Outcome | Exception] = []
    for command in commands:
        try:
            answers.append(HANDLERS[type(command)](stream, command, deps))
        except REJECTIONS as rejection:
            answers.append(rejection)
    return answers


def _batch_of(commands: Sequence[Command]) -> tuple[str, Lookups]:
    """The batch's user, and what its commands will ask the stream besides its row."""
    user_id = commands[0].user_id
    assert all(c.user_id == user_id for c in commands), "a batch is one user's commands"
    # Every key start_sync will recall (it asks for any key that is not None).
    keys = [c.meta.idempotency_key for c in commands if isinstance(c, StartRequested)]
    tasks = [c.task_id for c in commands if isinstance(c, CancelSync)]
    return user_id, Lookups(frozenset(k for k in keys if k is not None), frozenset(tasks))


def _gave_up(user_id: str, deps: Dependencies) -> ConflictRetriesExhausted:
    return ConflictRetriesExhausted(
        f"stream of user {user_id!r} kept moving; gave up after "
        f"{deps.conflict_retries + 1} attempts"
    )


async def handle(command: Command, deps: Dependencies) -> Outcome:
    """One command in a transaction of its own; its rejection is raised."""
    (answer,) = await handle_batch([command], deps)
    if isinstance(answer, Exception):
        raise answer
    return answer


def start_sync(stream: LockedStream, command: StartRequested, deps: Dependencies) -> StartOutcome:
    """Start a sync for the user, or join the live one."""
    key = command.meta.idempotency_key
    fingerprint = f"force_full={command.force_full}"
    if key is not None:
        prior = stream.recall_response(key)
        if prior is not None:
            if prior[0] != fingerprint:
                raise IdempotencyKeyReused(
                    f"Idempotency-Key {key!r} was first used with {prior[0]}, not {fingerprint}"
                )
            return StartOutcome.from_json(prior[1], replayed=True)
    before = stream.state
    events = decide(before, command, stream.now, deps.lease)
    stored = stream.append(events, command.meta)
    state = stream.state
    assert state.task_id and state.sync_type and state.started_at and state.lease_expires_at
    reused = isinstance(events[0], SyncReused)
    queued = reused and waits_for_full_sync(before, command.force_full)
    outcome = StartOutcome(
        task_id=state.task_id,
        sync_type=state.sync_type,
        started_at=state.started_at,
        lease_expires_at=state.lease_expires_at,
        reused=reused,
        version=stored[-1].version,
        expired_task_id=next((e.task_id for e in events if isinstance(e, SyncExpired)), None),
        outcome="queued" if queued else "joined" if reused else "started",
        full_sync_queued=state.full_sync_queued,
    )
    if key is not None:
        stream.remember_response(key, fingerprint, outcome.to_json())
    return outcome


def record_report(
    stream: LockedStream,
    command: ReportProgress | CompleteSync | FailSync | ExpireStaleSync,
    deps: Dependencies,
) -> TaskOutcome:
    """Progress (renews the lease), completion, failure, or the reaper's expiry.

    A report for a task that is not the live one raises TaskFenced; the reaper's expiry of
    a task renewed meanwhile records nothing.
    """
    events = decide(stream.state, command, stream.now, deps.lease)
    if events:
        stream.append(events, command.meta)
    state = stream.state
    task_id = getattr(command, "task_id", None) or (events[0].task_id if events else None)
    # The ending may be followed by the queued full sync: answer about the reported task.
    ended = next((e for e in events if e.event_type in ENDED_BY and e.task_id == task_id), None)
    return TaskOutcome(
        task_id=task_id or state.task_id or "",
        status=ENDED_BY[ended.event_type] if ended else state.status,
        version=stream.version,
        lease_expires_at=None if ended else state.lease_expires_at,
    )


def cancel_sync(stream: LockedStream, command: CancelSync, deps: Dependencies) -> TaskOutcome:
    """Stop the user's live task; one of their tasks that ended is a conflict, others unknown."""
    if command.task_id != stream.state.task_id:
        # Only the latest task is in the snapshot; an older one is looked up in the stream.
        last = stream.last_event_type(command.task_id)
        if last is None:
            raise TaskNotFound(command.task_id)
        raise TaskEnded(command.task_id, ENDED_BY.get(last, "ended"))
    stream.append(decide(stream.state, command, stream.now, deps.lease), command.meta)
    return TaskOutcome(
        task_id=command.task_id,
        status=stream.state.status,
        version=stream.version,
        lease_expires_at=None,
    )


Handler = Callable[[LockedStream, Any, Dependencies], Outcome]
HANDLERS: dict[type, Handler] = {
    StartRequested: start_sync,
    ReportProgress: record_report,
    CompleteSync: record_report,
    FailSync: record_report,
    ExpireStaleSync: record_report,
    CancelSync: cancel_sync,
}
