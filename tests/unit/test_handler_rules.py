"""The command rules through the real handlers, on the in-memory store and a settable clock.

The same store contract holds for PostgreSQL (tests/contract), so these run in milliseconds
without a database; the concurrency and crash behaviour stay in the integration tests.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from coordinator.adapters.memory.event_store import MemoryEventStore
from coordinator.service.handlers import (
    Dependencies,
    IdempotencyKeyReused,
    StartOutcome,
    TaskOutcome,
    handle,
    handle_batch,
)
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
from core.domain.events import SyncStarted
from core.domain.user_sync import TaskEnded, TaskFenced, TaskNotFound

LEASE = timedelta(minutes=30)
USER = "alice"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> MemoryEventStore:
    return MemoryEventStore(clock)


def meta(key: str | None = None) -> RequestMeta:
    return RequestMeta("rules", idempotency_key=key)


def start(
    store: MemoryEventStore, force_full: bool = False, key: str | None = None
) -> StartOutcome:
    outcome = asyncio.run(
        handle(StartRequested(USER, force_full, meta(key)), Dependencies(store, LEASE, 3))
    )
    assert isinstance(outcome, StartOutcome)
    return outcome


def report(store: MemoryEventStore, command: Command) -> TaskOutcome:
    outcome = asyncio.run(handle(command, Dependencies(store, LEASE, 3)))
    assert isinstance(outcome, TaskOutcome)
    return outcome


def types(store: MemoryEventStore) -> list[str]:
    return [e.event_type for e in asyncio.run(store.read_stream(USER))]


def test_clicks_join_the_live_task_and_a_dead_one_is_replaced(
    store: MemoryEventStore, clock: Clock
) -> None:
    first, again = start(store), start(store)
    assert (first.outcome, again.outcome) == ("started", "joined")
    assert again.task_id == first.task_id and again.version == 2
    clock.now += LEASE + timedelta(seconds=1)
    replaced = start(store)
    assert replaced.outcome == "started" and replaced.expired_task_id == first.task_id
    assert types(store) == ["SyncStarted", "SyncReused", "SyncExpired", "SyncStarted"]


def test_progress_renews_the_lease_and_stale_reports_are_fenced(
    store: MemoryEventStore, clock: Clock
) -> None:
    task = start(store).task_id
    clock.now += timedelta(minutes=20)
    renewed = report(store, ReportProgress(USER, task, 50.0, {}, meta()))
    assert renewed.lease_expires_at == clock.now + LEASE
    clock.now += timedelta(minutes=20)  # past the first lease, inside the renewed one
    assert start(store).task_id == task
    with pytest.raises(TaskFenced):
        report(store, ReportProgress(USER, "sync_old", 10.0, {}, meta()))
    clock.now += LEASE
    with pytest.raises(TaskFenced, match="lease ran out"):
        report(store, CompleteSync(USER, task, {}, meta()))


def test_the_reaper_expires_only_a_lapsed_task(store: MemoryEventStore, clock: Clock) -> None:
    start(store)
    report(store, ExpireStaleSync(USER, meta()))
    assert types(store) == ["SyncStarted"], "a live task is left alone"
    clock.now += LEASE
    assert asyncio.run(store.users_with_lapsed_leases(10)) == [USER]
    assert report(store, ExpireStaleSync(USER, meta())).status == "expired"
    assert asyncio.run(store.users_with_lapsed_leases(10)) == []


def test_a_full_sync_asked_during_an_incremental_is_queued_once_and_started_after_it(
    store: MemoryEventStore,
) -> None:
    task = start(store).task_id
    answers = [start(store, force_full=True) for _ in range(3)]
    assert [a.outcome for a in answers] == ["queued", "queued", "queued"]
    assert types(store).count("FullSyncQueued") == 1
    done = report(store, CompleteSync(USER, task, {"messages": 3}, meta()))
    assert done.status == "completed" and done.task_id == task
    *_, completed, started = asyncio.run(store.read_stream(USER))
    assert completed.event_type == "SyncCompleted"
    assert isinstance(started.data, SyncStarted) and started.data.sync_type == "full"
    assert started.data.reason == "queued_full_sync"


def test_a_failed_task_still_starts_the_queued_full_sync(store: MemoryEventStore) -> None:
    task = start(store).task_id
    start(store, force_full=True)
    assert report(store, FailSync(USER, task, "login refused", meta())).status == "failed"
    assert types(store)[-2:] == ["SyncFailed", "SyncStarted"]


def test_cancel_stops_the_live_task_and_refuses_ended_or_unknown_ones(
    store: MemoryEventStore,
) -> None:
    task = start(store).task_id
    assert report(store, CancelSync(USER, task, meta())).status == "cancelled"
    assert types(store)[-2:] == ["CancelRequested", "SyncCancelled"]
    with pytest.raises(TaskEnded):
        report(store, CancelSync(USER, task, meta()))
    with pytest.raises(TaskNotFound):
        report(store, CancelSync(USER, "sync_never", meta()))
    assert start(store).outcome == "started", "the next click starts a new task"


def test_an_idempotency_key_answers_again_and_refuses_other_parameters(
    store: MemoryEventStore,
) -> None:
    first = start(store, key="k1")
    again = start(store, key="k1")
    assert again.replayed and again.task_id == first.task_id and again.version == first.version
    assert types(store) == ["SyncStarted"]
    with pytest.raises(IdempotencyKeyReused):
        start(store, force_full=True, key="k1")


def test_a_batch_answers_each_command_on_its_own(store: MemoryEventStore) -> None:
    task = start(store).task_id
    batch: list[Command] = [
        StartRequested(USER, False, meta()),
        ReportProgress(USER, "sync_stale", 5.0, {}, meta()),
        StartRequested(USER, False, meta("k2")),
        StartRequested(USER, False, meta("k2")),
        CompleteSync(USER, task, {}, meta()),
        StartRequested(USER, False, meta()),
    ]
    answers = asyncio.run(handle_batch(batch, Dependencies(store, LEASE, 3)))
    assert isinstance(answers[1], TaskFenced)
    joined, first_k2, second_k2, done, fresh = (answers[i] for i in (0, 2, 3, 4, 5))
    assert isinstance(joined, StartOutcome) and joined.outcome == "joined"
    assert isinstance(first_k2, StartOutcome) and isinstance(second_k2, StartOutcome)
    assert second_k2.replayed and second_k2.version == first_k2.version
    assert isinstance(done, TaskOutcome) and done.status == "completed"
    assert isinstance(fresh, StartOutcome) and fresh.outcome == "started"
    assert [e.version for e in asyncio.run(store.read_stream(USER))] == list(range(1, 6))
