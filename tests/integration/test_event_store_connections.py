"""The command path on the event loop: its connections, and what it reads with the lock."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text

from coordinator.adapters.postgres.connections import APPLICATION_NAME
from coordinator.adapters.postgres.event_store import PostgresEventStore
from coordinator.service.handlers import Dependencies, handle_batch
from coordinator.service.outcomes import Outcome, StartOutcome
from core.database import libpq_url
from core.domain.commands import CancelSync, Command, RequestMeta, StartRequested
from core.domain.user_sync import TaskEnded, TaskNotFound
from core.store_errors import StoreUnavailable
from tests.support.random_refs import random_user


def deps(store: PostgresEventStore) -> Dependencies:
    return Dependencies(store, timedelta(minutes=30), conflict_retries=3)


def store_for(engine: Engine) -> PostgresEventStore:
    return PostgresEventStore(libpq_url(engine.url.render_as_string(hide_password=False)), 4)


def click(user: str, key: str | None = None) -> StartRequested:
    return StartRequested(user, False, RequestMeta("test", idempotency_key=key))


def run(engine: Engine, *batches: list[Command]) -> list[list[Outcome | Exception]]:
    """Each batch in turn through one async store, on one loop."""

    async def scenario() -> list[list[Outcome | Exception]]:
        store = store_for(engine)
        try:
            return [await handle_batch(b, deps(store)) for b in batches]
        finally:
            await store.close()

    return asyncio.run(scenario())


def test_keys_and_older_tasks_are_read_with_the_lock(engine: Engine) -> None:
    user = random_user("lookups")
    meta = RequestMeta("test")
    [[first]] = run(engine, [click(user, key="k")])
    assert isinstance(first, StartOutcome)
    run(engine, [CancelSync(user, first.task_id, meta)])
    [answers] = run(
        engine,
        [
            click(user, key="k"),  # remembered in an earlier transaction: its first answer
            CancelSync(user, first.task_id, meta),  # an older task: how it ended
            CancelSync(user, "sync_never", meta),  # never this user's
            click(user),
        ],
    )
    replayed, ended, unknown, started = answers
    assert isinstance(replayed, StartOutcome) and replayed.replayed
    assert replayed.task_id == first.task_id and replayed.version == first.version
    assert isinstance(ended, TaskEnded) and ended.status == "cancelled"
    assert isinstance(unknown, TaskNotFound)
    assert isinstance(started, StartOutcome) and started.task_id != first.task_id


def test_a_connection_killed_while_kept_fails_one_batch_and_is_replaced(
    database_url: str,
) -> None:
    # A database of its own: no other store keeps connections there.
    from core.database import make_engine

    user, engine = random_user("killed"), make_engine(database_url, pool_size=1)

    async def scenario() -> list[Any]:
        store, answers = store_for(engine), list[Any]()
        try:
            answers.append(await handle_batch([click(user)], deps(store)))
            with engine.begin() as conn:
                killed = conn.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name = :name AND datname = current_database()"
                    ),
                    {"name": APPLICATION_NAME},
                ).scalar()
            assert killed == 1, "the store keeps its one connection between batches"
            for _ in range(2):
                try:
                    answers.append(await handle_batch([click(user)], deps(store)))
                except StoreUnavailable as error:
                    answers.append(error)
        finally:
            await store.close()
            engine.dispose()
        return answers

    first, broken, after = asyncio.run(scenario())
    assert isinstance(broken, StoreUnavailable), "the dead connection fails its batch: a 503"
    [started], [joined] = first, after
    assert isinstance(started, StartOutcome) and isinstance(joined, StartOutcome)
    assert joined.task_id == started.task_id and joined.version == started.version + 1


def test_a_database_that_refuses_connections_is_unavailable(engine: Engine) -> None:
    url = libpq_url(engine.url.set(port=1).render_as_string(hide_password=False))

    async def scenario() -> None:
        store = PostgresEventStore(url, 4)
        try:
            await handle_batch([click(random_user())], deps(store))
        finally:
            await store.close()

    # At once, not after a pool's timeout: tests/e2e/test_delivery.py asks the API for it.
    with pytest.raises(StoreUnavailable):
        asyncio.run(scenario())
