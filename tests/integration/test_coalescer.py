"""Per-user coalescing against real row locks: every invariant holds when clicks share a batch."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import Engine, text

from coordinator.adapters.postgres.event_store import PostgresEventStore, PostgresLockedStream
from coordinator.service.coalescer import CoalescerLimits, CommandCoalescer
from coordinator.service.handlers import Dependencies, IdempotencyKeyReused, handle, handle_batch
from coordinator.service.outcomes import Outcome, StartOutcome, TaskOutcome
from coordinator.service.ports import NO_LOOKUPS, EventTooLarge, Lookups, QueueFull
from core.database import libpq_url
from core.domain.commands import Command, ReportProgress, RequestMeta, StartRequested
from core.domain.user_sync import TaskFenced
from tests.support.command_loop import command_store, run
from tests.support.random_refs import random_user
from tests.support.stream_locks import row_locked as held_row


def deps(store: PostgresEventStore) -> Dependencies:
    return Dependencies(store, timedelta(minutes=30), conflict_retries=3)


def click(user: str, key: str | None = None, force_full: bool = False) -> StartRequested:
    return StartRequested(user, force_full, RequestMeta("test", idempotency_key=key))


class Coalescer(CommandCoalescer):
    """A coalescer on this database with a store of its own, closed on the loop it used."""

    def __init__(self, engine: Engine, batches: list[int], **limits: int) -> None:
        url = libpq_url(engine.url.render_as_string(hide_password=False))
        self.store = CountingStore(url, 16)
        super().__init__(deps(self.store), CoalescerLimits(**limits), on_batch=batches.append)

    async def __aenter__(self) -> Coalescer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.store.close()


class CountingStore(PostgresEventStore):
    """Counts the transactions it has open at once."""

    running = most = 0

    @asynccontextmanager
    async def lock_stream(
        self, user_id: str, lookups: Lookups = NO_LOOKUPS
    ) -> AsyncIterator[PostgresLockedStream]:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            async with super().lock_stream(user_id, lookups) as stream:
                yield stream
        finally:
            self.running -= 1


coalescer = Coalescer


def events_of(engine: Engine, user: str) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT version, event_type FROM events WHERE stream_id = :s ORDER BY version"),
            {"s": f"UserSync-{user}"},
        ).all()
    return [(row[0], row[1]) for row in rows]


@contextmanager
def row_locked(engine: Engine, user: str) -> Iterator[threading.Event]:
    """A live task for the user, then its stream row held locked until released."""
    run(handle(click(user), deps(command_store(engine))))
    with held_row(engine, user) as release:
        yield release


async def gather(submit: Coalescer, commands: Sequence[Command]) -> list[object]:
    async with submit:
        return await asyncio.gather(*(submit.submit(c) for c in commands), return_exceptions=True)


def test_a_storm_of_one_user_is_coalesced_and_keeps_every_invariant(engine: Engine) -> None:
    user, batches = random_user("storm"), list[int]()
    answers = asyncio.run(gather(coalescer(engine, batches), [click(user)] * 300))
    assert [a for a in answers if not isinstance(a, StartOutcome)] == []
    outcomes = [a for a in answers if isinstance(a, StartOutcome)]
    assert len({o.task_id for o in outcomes}) == 1
    assert sorted(o.version for o in outcomes) == list(range(1, 301))
    assert [o.reused for o in outcomes].count(False) == 1
    stored = events_of(engine, user)
    assert [v for v, _ in stored] == list(range(1, 301))
    assert [t for _, t in stored].count("SyncStarted") == 1
    assert sum(batches) == 300 and max(batches) > 1, "clicks waiting together share a batch"


def test_each_caller_gets_its_own_answer_in_a_shared_batch(engine: Engine) -> None:
    user = random_user("mixed")
    first = run(handle(click(user), deps(command_store(engine))))
    assert isinstance(first, StartOutcome)
    live, meta = first.task_id, RequestMeta("test")
    commands: list[Command] = [
        click(user, key="k1"),
        click(user, key="k1"),  # the same key in the same batch: the first answer again
        click(user, key="k1", force_full=True),  # same key, other parameters: refused alone
        ReportProgress(user, "sync_stale", 10.0, {}, meta),  # fenced alone
        ReportProgress(user, live, 20.0, {"blob": "x" * 300_000}, meta),  # too large alone
        ReportProgress(user, live, 30.0, {"imported": 3}, meta),
        click(user),
    ]
    answers = run(handle_batch(commands, deps(command_store(engine))))
    keyed, again, reused_key, fenced, too_large, progressed, last = answers
    assert isinstance(keyed, StartOutcome) and isinstance(again, StartOutcome)
    assert again.replayed and again.version == keyed.version == 2
    assert isinstance(reused_key, IdempotencyKeyReused)
    assert isinstance(fenced, TaskFenced) and fenced.task_id == "sync_stale"
    assert isinstance(too_large, EventTooLarge)
    assert isinstance(progressed, TaskOutcome) and progressed.version == 3
    assert isinstance(last, StartOutcome) and last.version == 4 and last.task_id == live
    assert events_of(engine, user) == [
        (1, "SyncStarted"),
        (2, "SyncReused"),
        (3, "SyncProgressed"),
        (4, "SyncReused"),
    ]


def test_an_over_full_queue_is_refused_and_the_rest_are_answered(engine: Engine) -> None:
    user = random_user("full")

    async def scenario() -> tuple[list[object], BaseException | None]:
        async with coalescer(engine, [], waiting_per_user=5) as submit:
            return await full_queue(submit)

    async def full_queue(submit: Coalescer) -> tuple[list[object], BaseException | None]:
        with row_locked(engine, user) as release:
            taken = asyncio.ensure_future(submit.submit(click(user)))
            await asyncio.sleep(0.2)  # taken into a transaction that waits on the lock
            waiting = [asyncio.ensure_future(submit.submit(click(user))) for _ in range(5)]
            await asyncio.sleep(0.05)
            assert submit.waiting == 5
            refused: BaseException | None = None
            try:
                await submit.submit(click(user))
            except QueueFull as error:
                refused = error
            release.set()
            answers = await asyncio.gather(taken, *waiting, return_exceptions=True)
        return list(answers), refused

    answers, refused = asyncio.run(scenario())
    assert isinstance(refused, QueueFull) and refused.retry_after >= 1
    assert all(isinstance(a, StartOutcome) for a in answers)
    assert len(events_of(engine, user)) == 1 + 6


def test_callers_that_leave_before_their_turn_leave_nothing_behind(engine: Engine) -> None:
    user = random_user("gone")

    async def scenario() -> tuple[list[Outcome], int]:
        async with coalescer(engine, []) as submit:
            return await leaving(submit)

    async def leaving(submit: Coalescer) -> tuple[list[Outcome], int]:
        with row_locked(engine, user) as release:
            taken = asyncio.ensure_future(submit.submit(click(user)))
            await asyncio.sleep(0.2)
            waiting = [asyncio.ensure_future(submit.submit(click(user))) for _ in range(10)]
            await asyncio.sleep(0.05)
            for task in waiting[:6]:
                task.cancel()
            await asyncio.sleep(0)
            left = submit.waiting
            release.set()
            answers = await asyncio.gather(taken, *waiting[6:])
        assert submit.waiting == 0 and not submit._lines
        return list(answers), left

    answers, left = asyncio.run(scenario())
    assert left == 4
    assert sorted(a.version for a in answers) == [2, 3, 4, 5, 6]
    assert [t for _, t in events_of(engine, user)] == ["SyncStarted"] + ["SyncReused"] * 5


def test_transactions_in_flight_are_bounded_across_users(engine: Engine) -> None:
    submit = coalescer(engine, [], transactions_in_flight=3)
    users = [random_user("bounded") for _ in range(40)]
    answers = asyncio.run(gather(submit, [click(u) for u in users for _ in range(5)]))
    assert all(isinstance(a, StartOutcome) for a in answers)
    assert submit.store.most == 3
    assert all(len(events_of(engine, u)) == 5 for u in users)


@pytest.mark.parametrize("user_count", [1, 8])
def test_two_coalescers_on_one_database_make_one_task_per_user(
    engine: Engine, user_count: int
) -> None:
    """Two processes' worth of coalescers: the row lock serialises their batches."""
    users = [random_user("two") for _ in range(user_count)]
    commands = [click(u) for u in users for _ in range(60)]

    def run_one() -> list[object]:
        return asyncio.run(gather(coalescer(engine, []), commands))

    results: list[list[object]] = [[], []]
    threads = [threading.Thread(target=lambda i=i: results[i].extend(run_one())) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(isinstance(a, StartOutcome) for r in results for a in r)
    for user in users:
        stored = events_of(engine, user)
        assert [v for v, _ in stored] == list(range(1, 121))
        assert [t for _, t in stored].count("SyncStarted") == 1
