"""Folding a user's events a batch at a time gives the rows one event at a time gives."""

from __future__ import annotations

import random
from dataclasses import fields
from datetime import UTC, datetime, timedelta

import pytest

from coordinator.replay.rebuild import fold_stream
from core.domain.commands import (
    CancelSync,
    Command,
    CompleteSync,
    ExpireStaleSync,
    FailSync,
    ReportProgress,
    RequestMeta,
    StartRequested,
)
from core.domain.events import Envelope, stamp
from core.domain.user_sync import TaskEnded, TaskFenced, TaskNotFound, decide, fold
from projections.status_view import StatusRow, fold_status
from projections.task_history import TaskRow, fold_task

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=30)


def history(seed: int, commands: int = 120) -> list[Envelope]:
    """One user's events from random commands through decide(), on a clock that sometimes
    jumps past the lease: starts, reuses, queued full syncs, progress and every ending."""
    rng = random.Random(seed)
    events: list[Envelope] = []
    state, now, task_ids = fold([]), T0, iter(f"t{n}" for n in range(10_000))
    for _ in range(commands):
        now += timedelta(minutes=rng.choice([1, 1, 2, 45]))
        meta, task = RequestMeta(f"req-{len(events)}"), state.task_id or "none"
        options: list[Command] = [
            StartRequested("u1", rng.random() < 0.3, meta),
            StartRequested("u1", False, meta),
            ReportProgress("u1", task, rng.random() * 100, {"n": rng.randrange(99)}, meta),
            CompleteSync("u1", task, {"n": 100}, meta),
            FailSync("u1", task, "boom", meta),
            CancelSync("u1", task, meta),
            ExpireStaleSync("u1", meta),
        ]
        command = rng.choice(options)
        try:
            new = decide(state, command, now, LEASE, lambda: next(task_ids))
        except (TaskFenced, TaskEnded, TaskNotFound):
            continue
        events += stamp(
            new,
            stream_id="UserSync-u1",
            user_id="u1",
            after_version=len(events),
            now=now,
            correlation_id=meta.correlation_id,
            causation_id=meta.command_id,
        )
        state = fold(new, state)
    return events


def chunks(events: list[Envelope], rng: random.Random) -> list[list[Envelope]]:
    """The events cut into batches of random sizes, as polls cut them."""
    cuts = sorted(rng.sample(range(1, len(events)), k=min(12, len(events) - 1)))
    return [events[a:b] for a, b in zip([0, *cuts], [*cuts, len(events)], strict=True)]


@pytest.mark.parametrize("seed", range(8))
def test_a_fold_per_batch_equals_the_fold_per_event(seed: int) -> None:
    events = history(seed)
    assert {type(e.data).__name__ for e in events} >= {
        "SyncStarted",
        "SyncReused",
        "SyncProgressed",
        "SyncCompleted",
    }
    one_by_one, tasks = fold_stream(events)  # the replay tool's fold, one event at a time
    tasks_one_by_one = {task.task_id: task for task in tasks}

    batched: StatusRow | None = None
    tasks_batched: dict[str, TaskRow] = {}
    for batch in chunks(events, random.Random(seed)):
        batched = fold_status(batched, batch)
        for task_id in dict.fromkeys(e.data.task_id for e in batch):
            about = [e for e in batch if e.data.task_id == task_id]
            task = fold_task(tasks_batched.get(task_id), about)
            if task is not None:
                tasks_batched[task_id] = task

    assert batched == one_by_one
    assert tasks_batched == tasks_one_by_one
    # Rows are written positionally from their __dict__ (projections/store.py).
    rows = [batched, *tasks_batched.values()]
    assert all(list(vars(r)) == [f.name for f in fields(r)] for r in rows)  # type: ignore[arg-type]


def test_no_events_leave_the_row_as_it_was() -> None:
    row = StatusRow(user_id="u1", status="running", last_version=4)
    assert fold_status(row, []) is row
    assert fold_status(None, []) is None
    assert fold_task(None, []) is None
