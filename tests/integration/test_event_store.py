"""The PostgreSQL event store against a real server: locks, versions, immutability, snapshots."""

from __future__ import annotations

from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, cast

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from coordinator.adapters.postgres.connections import AsyncConnections
from coordinator.adapters.postgres.event_store import PostgresEventStore, PostgresLockedStream
from coordinator.service.handlers import Dependencies, StartOutcome, handle
from coordinator.service.ports import NO_LOOKUPS, ConflictRetriesExhausted, EventStore, Lookups
from core.database import libpq_url
from core.domain.commands import RequestMeta, StartRequested
from core.domain.user_sync import decide, fold
from core.store_errors import ConcurrencyConflict
from tests.support.command_loop import command_store, run
from tests.support.random_refs import random_user

LEASE = timedelta(minutes=30)


def deps(store: EventStore, lease: float = 1800, retries: int = 3) -> Dependencies:
    return Dependencies(store=store, lease=timedelta(seconds=lease), conflict_retries=retries)


def click(user: str, force_full: bool = False) -> StartRequested:
    return StartRequested(user_id=user, force_full=force_full, meta=RequestMeta("test"))


def test_first_start_then_reuse_are_recorded_in_order(engine: Engine) -> None:
    store = command_store(engine)
    user = random_user()
    first = run(handle(click(user), deps(store)))
    second = run(handle(click(user, force_full=True), deps(store)))
    assert isinstance(first, StartOutcome) and isinstance(second, StartOutcome)
    assert (first.reused, second.reused) == (False, True)
    assert second.task_id == first.task_id and second.sync_type == "incremental"
    events = run(store.read_stream(user))
    assert [(e.version, e.event_type) for e in events] == [
        (1, "SyncStarted"),
        (2, "SyncReused"),
        (3, "FullSyncQueued"),  # the full sync asked for waits behind the incremental one
    ]
    assert {e.user_id for e in events} == {user}


def test_snapshot_equals_fold_of_events(engine: Engine) -> None:
    store = command_store(engine)
    user = random_user()
    for i in range(6):
        run(handle(click(user, force_full=i % 2 == 0), deps(store, lease=0.05 if i % 3 else 1800)))
    version, snapshot = run(store.snapshot(user))
    events = run(store.read_stream(user))
    assert version == len(events) == events[-1].version
    assert snapshot == fold(e.data for e in events)


def test_concurrent_first_starts_of_a_new_user_make_one_task(engine: Engine) -> None:
    store = command_store(engine)
    user = random_user("brand-new")
    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(lambda _: run(handle(click(user), deps(store))), range(48)))
    assert len({o.task_id for o in outcomes}) == 1
    types = [e.event_type for e in run(store.read_stream(user))]
    assert types.count("SyncStarted") == 1 and types.count("SyncReused") == 47
    assert [e.version for e in run(store.read_stream(user))] == list(range(1, 49))


class StaleStore(PostgresEventStore):
    """Hands out streams whose expected version is stale, as a writer without the lock would."""

    def __init__(self, engine: Engine, stale_times: int) -> None:
        super().__init__(libpq_url(engine.url.render_as_string(hide_password=False)), size=1)
        self.stale_times = stale_times
        self.attempts = 0

    @asynccontextmanager
    async def lock_stream(
        self, user_id: str, lookups: Lookups = NO_LOOKUPS
    ) -> AsyncIterator[PostgresLockedStream]:
        async with super().lock_stream(user_id, lookups) as stream:
            self.attempts += 1
            if self.attempts <= self.stale_times:
                stream.version -= 1
            yield stream


def test_stale_expected_version_is_a_conflict(engine: Engine) -> None:
    user = random_user()
    run(handle(click(user), deps(command_store(engine))))
    stale = StaleStore(engine, stale_times=1)

    async def append_at_a_stale_version() -> None:
        async with stale.lock_stream(user) as stream:
            events = decide(stream.state, click(user), stream.now, LEASE)
            stream.append(events, RequestMeta("t"))

    with pytest.raises(ConcurrencyConflict):
        run(append_at_a_stale_version())
    assert [e.version for e in run(command_store(engine).read_stream(user))] == [1]


def test_conflict_is_retried_then_succeeds(engine: Engine) -> None:
    user = random_user()
    run(handle(click(user), deps(command_store(engine))))
    store = StaleStore(engine, stale_times=2)
    outcome = run(handle(click(user), deps(store, retries=3)))
    assert isinstance(outcome, StartOutcome)
    assert store.attempts == 3 and outcome.reused and outcome.version == 2


def test_conflict_retries_are_bounded_and_loud(engine: Engine) -> None:
    user = random_user()
    run(handle(click(user), deps(command_store(engine))))
    store = StaleStore(engine, stale_times=100)
    with pytest.raises(ConflictRetriesExhausted):
        run(handle(click(user), deps(store, retries=2)))
    assert store.attempts == 3
    assert len(run(command_store(engine).read_stream(user))) == 1


def test_duplicate_stream_version_is_refused_by_the_database(engine: Engine) -> None:
    user = random_user()
    run(handle(click(user), deps(command_store(engine))))
    with pytest.raises(DBAPIError, match="events_stream_version_key"), engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO events (event_id, stream_id, version, event_type, schema_version,"
                " occurred_at, data, metadata, prev_hash, hash) SELECT gen_random_uuid(),"
                " stream_id, version, event_type, schema_version, occurred_at, data, metadata,"
                " prev_hash, hash FROM events"
                " WHERE stream_id = :s"
            ),
            {"s": f"UserSync-{user}"},
        )


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE events SET event_type = 'SyncCompleted' WHERE stream_id = :s",
        "DELETE FROM events WHERE stream_id = :s",
    ],
)
def test_events_are_immutable(engine: Engine, statement: str) -> None:
    user = random_user()
    run(handle(click(user), deps(command_store(engine))))
    with pytest.raises(DBAPIError, match="events are immutable"), engine.begin() as conn:
        conn.execute(text(statement), {"s": f"UserSync-{user}"})
    assert len(run(command_store(engine).read_stream(user))) == 1


def test_truncate_of_events_is_refused(database_url: str) -> None:
    from core.database import make_engine

    own = make_engine(database_url, pool_size=1)
    with pytest.raises(DBAPIError, match="events are immutable"), own.begin() as conn:
        conn.execute(text("TRUNCATE events CASCADE"))
    own.dispose()


def test_command_does_not_read_the_history(engine: Engine) -> None:
    """Loading a user's aggregate reads only the stream row, whatever the history length."""
    user = random_user()
    for _ in range(30):
        run(handle(click(user), deps(command_store(engine))))
    store = PostgresEventStore(libpq_url(engine.url.render_as_string(hide_password=False)), 1)
    seen = Watched(store._pool)
    store._pool = seen  # type: ignore[assignment]

    async def scans_under_the_lock() -> object:
        try:
            async with store.lock_stream(user) as stream:
                assert seen.conn is not None and stream.version == 30
                cursor = await seen.conn.execute(
                    "SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) "
                    "FROM pg_stat_xact_user_tables WHERE relname = 'events'"
                )
                row = await cursor.fetchone()
                return row[0] if row else None
        finally:
            await store.close()

    assert not run(scans_under_the_lock())


class Watched:
    """The store's connections, remembering the one in use (to ask it what it read)."""

    def __init__(self, pool: AsyncConnections) -> None:
        self.pool, self.conn = pool, cast(Any, None)
        self.close = pool.close

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        async with self.pool.connection() as conn:
            self.conn = conn
            yield conn


def test_outcome_round_trips_for_idempotency(engine: Engine) -> None:
    user = random_user()
    outcome = run(handle(click(user), deps(command_store(engine))))
    assert isinstance(outcome, StartOutcome)
    again = StartOutcome.from_json(outcome.to_json(), replayed=True)
    assert again.task_id == outcome.task_id and again.started_at == outcome.started_at
