"""The EventStore contract, run against the in-memory store and against PostgreSQL.

Each test says what every store must do; `make_store` gives one of each kind, so the
handler rules tested fast against the memory store (tests/unit/test_handler_rules.py) hold
for the real one too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest

from coordinator.adapters.memory.event_store import MemoryEventStore
from coordinator.adapters.postgres.event_store import PostgresEventStore
from coordinator.service.handlers import Dependencies, handle
from coordinator.service.ports import EventStore, EventTooLarge
from core.domain.commands import RequestMeta, StartRequested
from core.domain.events import SyncStarted
from core.domain.user_sync import decide, fold
from tests.random_refs import random_user

LEASE = timedelta(minutes=30)
MakeStore = Callable[..., Any]


@pytest.fixture(params=["memory", "postgres"])
def make_store(request: pytest.FixtureRequest) -> MakeStore:
    if request.param == "memory":
        return MemoryEventStore
    engine = request.getfixturevalue("engine")
    return lambda **options: PostgresEventStore(engine, **options)


def click(user: str, force_full: bool = False, key: str | None = None) -> StartRequested:
    return StartRequested(user, force_full, RequestMeta("contract", idempotency_key=key))


def deps(store: EventStore, lease: timedelta = LEASE) -> Dependencies:
    return Dependencies(store=store, lease=lease, conflict_retries=3)


def test_a_new_stream_is_empty_at_version_zero_with_the_stores_clock(
    make_store: MakeStore,
) -> None:
    store, user = make_store(), random_user("contract")
    with store.lock_stream(user) as stream:
        assert (stream.version, stream.state.status, stream.user_id) == (0, "none", user)
        assert stream.now.tzinfo is not None
    assert store.read_stream(user) == []


def test_appended_events_are_stored_in_order_with_the_folded_snapshot(
    make_store: MakeStore,
) -> None:
    store, user = make_store(), random_user("contract")
    for force_full in (False, True, False):
        handle(click(user, force_full), deps(store))
    events = store.read_stream(user)
    assert [(e.version, e.event_type) for e in events] == [
        (1, "SyncStarted"),
        (2, "SyncReused"),
        (3, "FullSyncQueued"),
        (4, "SyncReused"),
    ]
    assert {e.user_id for e in events} == {user}
    assert store.snapshot(user) == (4, fold(e.data for e in events))


def test_an_exception_inside_the_transaction_writes_nothing(make_store: MakeStore) -> None:
    store, user = make_store(), random_user("contract")
    with pytest.raises(RuntimeError), store.lock_stream(user) as stream:
        stream.append(decide(stream.state, click(user), stream.now, LEASE), RequestMeta("x"))
        stream.remember_response("key", "fingerprint", {"answer": 1})
        assert stream.version == 1 and stream.recall_response("key") is not None
        raise RuntimeError("the command failed after staging")
    assert store.read_stream(user) == []
    with store.lock_stream(user) as stream:
        assert stream.version == 0 and stream.recall_response("key") is None


def test_the_lock_serialises_one_users_commands(make_store: MakeStore) -> None:
    store, user = make_store(), random_user("contract")
    with ThreadPoolExecutor(max_workers=12) as pool:
        outcomes = list(pool.map(lambda _: handle(click(user), deps(store)), range(36)))
    assert len({o.task_id for o in outcomes}) == 1
    events = store.read_stream(user)
    assert [e.version for e in events] == list(range(1, 37))
    assert [e.event_type for e in events].count("SyncStarted") == 1


def test_a_remembered_response_is_recalled_in_and_after_its_transaction(
    make_store: MakeStore,
) -> None:
    store, user, other = make_store(), random_user("contract"), random_user("contract")
    with store.lock_stream(user) as stream:
        assert stream.recall_response("k") is None
        stream.remember_response("k", "force_full=False", {"task_id": "t"})
        assert stream.recall_response("k") == ("force_full=False", {"task_id": "t"})
    with store.lock_stream(user) as stream:
        assert stream.recall_response("k") == ("force_full=False", {"task_id": "t"})
    with store.lock_stream(other) as stream:
        assert stream.recall_response("k") is None, "keys are per user"


def test_an_event_over_the_size_limit_stages_nothing(make_store: MakeStore) -> None:
    store, user = make_store(max_event_bytes=300), random_user("contract")
    with store.lock_stream(user) as stream:
        events = decide(stream.state, click(user), stream.now, LEASE)
        with pytest.raises(EventTooLarge) as refused:
            stream.append(events, RequestMeta("x" * 400))
        assert refused.value.limit == 300 and stream.version == 0
    assert store.read_stream(user) == []


def test_the_last_event_of_a_task_is_found_staged_or_stored(make_store: MakeStore) -> None:
    store, user = make_store(), random_user("contract")
    first = handle(click(user), deps(store))
    with store.lock_stream(user) as stream:
        assert stream.last_event_type(first.task_id) == "SyncStarted"
        assert stream.last_event_type("sync_unknown") is None
        stream.append(decide(stream.state, click(user), stream.now, LEASE), RequestMeta("x"))
        assert stream.last_event_type(first.task_id) == "SyncReused"


def test_lapsed_leases_are_found_by_the_stores_clock(make_store: MakeStore) -> None:
    store, user, live = make_store(), random_user("contract"), random_user("contract")
    handle(click(user), deps(store, lease=timedelta(milliseconds=50)))
    handle(click(live), deps(store))
    time.sleep(0.2)
    lapsed = store.users_with_lapsed_leases(limit=100_000)
    assert user in lapsed and live not in lapsed
    assert isinstance(store.read_stream(user)[0].data, SyncStarted)
