"""The EventStore contract, run against the in-memory store and against PostgreSQL.

Each test says what every store must do; `store` is one of each kind, so the handler rules
tested fast against the memory store (tests/unit/test_handler_rules.py) hold for the one the
API, the reaper and the watcher use. The command path is async: each test is a coroutine,
run on a loop of its own that also closes the store's connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from coordinator.adapters.memory.event_store import MemoryEventStore
from coordinator.service.handlers import Dependencies, handle
from coordinator.service.outcomes import Outcome
from coordinator.service.ports import EventStore, EventTooLarge, Lookups
from core.domain.commands import RequestMeta, StartRequested
from core.domain.events import SyncStarted
from core.domain.user_sync import decide, fold
from tests.support.random_refs import random_user

LEASE = timedelta(minutes=30)
Body = Callable[[EventStore], Awaitable[None]]
Contract = Callable[..., None]


@pytest.fixture(params=["memory", "postgres"])
def contract(request: pytest.FixtureRequest) -> Iterator[Contract]:
    """`contract(body, **options)`: runs `body` against a new store of this kind."""

    def run(body: Body, **options: Any) -> None:
        async def main() -> None:
            if request.param == "memory":
                await body(MemoryEventStore(**options))
                return
            from coordinator.adapters.postgres.event_store import PostgresEventStore
            from core.database import libpq_url

            url = libpq_url(request.getfixturevalue("shared_database_url"))
            store = PostgresEventStore(url, size=4, **options)
            try:
                await body(store)
            finally:
                await store.close()

        asyncio.run(main())

    yield run


def click(user: str, force_full: bool = False, key: str | None = None) -> StartRequested:
    return StartRequested(user, force_full, RequestMeta("contract", idempotency_key=key))


def deps(store: EventStore, lease: timedelta = LEASE) -> Dependencies:
    return Dependencies(store=store, lease=lease, conflict_retries=3)


def test_a_new_stream_is_empty_at_version_zero_with_the_stores_clock(contract: Contract) -> None:
    async def body(store: EventStore) -> None:
        user = random_user("contract")
        async with store.lock_stream(user) as stream:
            assert (stream.version, stream.state.status, stream.user_id) == (0, "none", user)
            assert stream.now.tzinfo is not None
        assert await store.read_stream(user) == []

    contract(body)


def test_appended_events_are_stored_in_order_with_the_folded_snapshot(
    contract: Contract,
) -> None:
    async def body(store: EventStore) -> None:
        user = random_user("contract")
        for force_full in (False, True, False):
            await handle(click(user, force_full), deps(store))
        events = await store.read_stream(user)
        assert [(e.version, e.event_type) for e in events] == [
            (1, "SyncStarted"),
            (2, "SyncReused"),
            (3, "FullSyncQueued"),
            (4, "SyncReused"),
        ]
        assert {e.user_id for e in events} == {user}
        assert await store.snapshot(user) == (4, fold(e.data for e in events))

    contract(body)


def test_an_exception_inside_the_transaction_writes_nothing(contract: Contract) -> None:
    async def body(store: EventStore) -> None:
        user, key = random_user("contract"), Lookups(keys=frozenset({"key"}))
        with pytest.raises(RuntimeError):
            async with store.lock_stream(user, key) as stream:
                events = decide(stream.state, click(user), stream.now, LEASE)
                stream.append(events, RequestMeta("x"))
                stream.remember_response("key", "fingerprint", {"answer": 1})
                assert stream.version == 1 and stream.recall_response("key") is not None
                raise RuntimeError("the command failed after staging")
        assert await store.read_stream(user) == []
        async with store.lock_stream(user, key) as stream:
            assert stream.version == 0 and stream.recall_response("key") is None

    contract(body)


def test_the_lock_serialises_one_users_commands(contract: Contract) -> None:
    async def body(store: EventStore) -> None:
        user, at_once = random_user("contract"), asyncio.Semaphore(12)

        async def start() -> Outcome:
            async with at_once:  # as the coalescer bounds transactions in flight
                return await handle(click(user), deps(store))

        outcomes = await asyncio.gather(*(start() for _ in range(36)))
        assert len({o.task_id for o in outcomes}) == 1
        events = await store.read_stream(user)
        assert [e.version for e in events] == list(range(1, 37))
        assert [e.event_type for e in events].count("SyncStarted") == 1

    contract(body)


def test_a_remembered_response_is_recalled_in_and_after_its_transaction(
    contract: Contract,
) -> None:
    async def body(store: EventStore) -> None:
        user, other = random_user("contract"), random_user("contract")
        key = Lookups(keys=frozenset({"k"}))
        async with store.lock_stream(user, key) as stream:
            assert stream.recall_response("k") is None
            stream.remember_response("k", "force_full=False", {"task_id": "t"})
            assert stream.recall_response("k") == ("force_full=False", {"task_id": "t"})
        async with store.lock_stream(user, key) as stream:
            assert stream.recall_response("k") == ("force_full=False", {"task_id": "t"})
        async with store.lock_stream(other, key) as stream:
            assert stream.recall_response("k") is None, "keys are per user"

    contract(body)


def test_an_event_over_the_size_limit_stages_nothing(contract: Contract) -> None:
    async def body(store: EventStore) -> None:
        user = random_user("contract")
        async with store.lock_stream(user) as stream:
            events = decide(stream.state, click(user), stream.now, LEASE)
            with pytest.raises(EventTooLarge) as refused:
                stream.append(events, RequestMeta("x" * 400))
            assert refused.value.limit == 300 and stream.version == 0
        assert await store.read_stream(user) == []

    contract(body, max_event_bytes=300)


def test_the_last_event_of_a_task_is_found_staged_or_stored(contract: Contract) -> None:
    async def body(store: EventStore) -> None:
        user = random_user("contract")
        first = await handle(click(user), deps(store))
        tasks = Lookups(tasks=frozenset({first.task_id, "sync_unknown"}))
        async with store.lock_stream(user, tasks) as stream:
            assert stream.last_event_type(first.task_id) == "SyncStarted"
            assert stream.last_event_type("sync_unknown") is None
            events = decide(stream.state, click(user), stream.now, LEASE)
            stream.append(events, RequestMeta("x"))
            assert stream.last_event_type(first.task_id) == "SyncReused"

    contract(body)


def test_lapsed_leases_are_found_by_the_stores_clock(contract: Contract) -> None:
    async def body(store: EventStore) -> None:
        user, live = random_user("contract"), random_user("contract")
        await handle(click(user), deps(store, lease=timedelta(milliseconds=50)))
        await handle(click(live), deps(store))
        await asyncio.sleep(0.2)
        lapsed = await store.users_with_lapsed_leases(limit=100_000)
        assert user in lapsed and live not in lapsed
        assert isinstance((await store.read_stream(user))[0].data, SyncStarted)

    contract(body)
