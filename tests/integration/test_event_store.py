"""The PostgreSQL event store against a real server: locks, versions, immutability, snapshots."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from coordinator.adapters.postgres.event_store import PostgresEventStore, PostgresLockedStream
from coordinator.service.handlers import Dependencies, StartOutcome, handle
from coordinator.service.ports import NO_LOOKUPS, ConflictRetriesExhausted, Lookups
from core.domain.commands import RequestMeta, StartRequested
from core.domain.user_sync import decide, fold
from core.store_errors import ConcurrencyConflict
from tests.random_refs import random_user

LEASE = timedelta(minutes=30)


def deps(store: PostgresEventStore, lease: float = 1800, retries: int = 3) -> Dependencies:
    return Dependencies(store=store, lease=timedelta(seconds=lease), conflict_retries=retries)


def click(user: str, force_full: bool = False) -> StartRequested:
    return StartRequested(user_id=user, force_full=force_full, meta=RequestMeta("test"))


def test_first_start_then_reuse_are_recorded_in_order(engine: Engine) -> None:
    store = PostgresEventStore(engine)
    user = random_user()
    first = handle(click(user), deps(store))
    second = handle(click(user, force_full=True), deps(store))
    assert (first.reused, second.reused) == (False, True)
    assert second.task_id == first.task_id and second.sync_type == "incremental"
    events = store.read_stream(user)
    assert [(e.version, e.event_type) for e in events] == [
        (1, "SyncStarted"),
        (2, "SyncReused"),
        (3, "FullSyncQueued"),  # the full sync asked for waits behind the incremental one
    ]
    assert {e.user_id for e in events} == {user}


def test_snapshot_equals_fold_of_events(engine: Engine) -> None:
    store = PostgresEventStore(engine)
    user = random_user()
    for i in range(6):
        handle(click(user, force_full=i % 2 == 0), deps(store, lease=0.05 if i % 3 else 1800))
    version, snapshot = store.snapshot(user)
    events = store.read_stream(user)
    assert version == len(events) == events[-1].version
    assert snapshot == fold(e.data for e in events)


def test_concurrent_first_starts_of_a_new_user_make_one_task(engine: Engine) -> None:
    store = PostgresEventStore(engine)
    user = random_user("brand-new")
    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(lambda _: handle(click(user), deps(store)), range(48)))
    assert len({o.task_id for o in outcomes}) == 1
    types = [e.event_type for e in store.read_stream(user)]
    assert types.count("SyncStarted") == 1 and types.count("SyncReused") == 47
    assert [e.version for e in store.read_stream(user)] == list(range(1, 49))


class StaleStore(PostgresEventStore):
    """Hands out streams whose expected version is stale, as a writer without the lock would."""

    def __init__(self, engine: Engine, stale_times: int) -> None:
        super().__init__(engine)
        self.stale_times = stale_times
        self.attempts = 0

    @contextmanager
    def lock_stream(
        self, user_id: str, lookups: Lookups = NO_LOOKUPS
    ) -> Iterator[PostgresLockedStream]:
        with super().lock_stream(user_id, lookups) as stream:
            self.attempts += 1
            if self.attempts <= self.stale_times:
                stream.version -= 1
            yield stream


def test_stale_expected_version_is_a_conflict(engine: Engine) -> None:
    user = random_user()
    handle(click(user), deps(PostgresEventStore(engine)))
    stale = StaleStore(engine, stale_times=1)
    with pytest.raises(ConcurrencyConflict), stale.lock_stream(user) as stream:
        stream.append(decide(stream.state, click(user), stream.now, LEASE), RequestMeta("t"))
    assert [e.version for e in PostgresEventStore(engine).read_stream(user)] == [1]


def test_conflict_is_retried_then_succeeds(engine: Engine) -> None:
    user = random_user()
    handle(click(user), deps(PostgresEventStore(engine)))
    store = StaleStore(engine, stale_times=2)
    outcome = handle(click(user), deps(store, retries=3))
    assert store.attempts == 3 and outcome.reused and outcome.version == 2


def test_conflict_retries_are_bounded_and_loud(engine: Engine) -> None:
    user = random_user()
    handle(click(user), deps(PostgresEventStore(engine)))
    store = StaleStore(engine, stale_times=100)
    with pytest.raises(ConflictRetriesExhausted):
        handle(click(user), deps(store, retries=2))
    assert store.attempts == 3
    assert len(PostgresEventStore(engine).read_stream(user)) == 1


def test_duplicate_stream_version_is_refused_by_the_database(engine: Engine) -> None:
    user = random_user()
    handle(click(user), deps(PostgresEventStore(engine)))
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
    handle(click(user), deps(PostgresEventStore(engine)))
    with pytest.raises(DBAPIError, match="events are immutable"), engine.begin() as conn:
        conn.execute(text(statement), {"s": f"UserSync-{user}"})
    assert len(PostgresEventStore(engine).read_stream(user)) == 1


def test_truncate_of_events_is_refused(database_url: str) -> None:
    from core.database import make_engine

    own = make_engine(database_url, pool_size=1)
    with pytest.raises(DBAPIError, match="events are immutable"), own.begin() as conn:
        conn.execute(text("TRUNCATE events CASCADE"))
    own.dispose()


def test_command_does_not_read_the_history(engine: Engine) -> None:
    """Loading a user's aggregate reads only the stream row, whatever the history length."""
    store = PostgresEventStore(engine)
    user = random_user()
    for _ in range(30):
        handle(click(user), deps(store))
    with store.lock_stream(user) as stream:
        row = stream._cursor.execute(
            "SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) "
            "FROM pg_stat_xact_user_tables WHERE relname = 'events'"
        ).fetchone()
        scans = row[0] if row else None
        assert stream.version == 30
    assert not scans


def test_outcome_round_trips_for_idempotency(engine: Engine) -> None:
    user = random_user()
    outcome = handle(click(user), deps(PostgresEventStore(engine)))
    again = StartOutcome.from_json(outcome.to_json(), replayed=True)
    assert again.task_id == outcome.task_id and again.started_at == outcome.started_at
