"""The relay against real PostgreSQL and a real Kafka-protocol broker."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, text

from coordinator.adapters.postgres.outbox_store import OutboxStore, RelayLeadership
from coordinator.relay.outbox_relay import OutboxRelay, RelayConfig
from coordinator.service.handlers import Dependencies, handle
from core.database import make_engine
from core.domain.commands import RequestMeta, StartRequested
from tests.support.command_loop import command_store, run
from tests.support.kafka_topic import by_user, read_topic
from tests.support.random_refs import random_name, random_user


@pytest.fixture
def own_engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=4)
    yield engine
    engine.dispose()


def click_many(engine: Engine, users: list[str], clicks: int, lease: float = 1800) -> None:
    deps = Dependencies(command_store(engine), timedelta(seconds=lease), 3)
    for _ in range(clicks):
        for user in users:
            run(handle(StartRequested(user, False, RequestMeta("test")), deps))


class RunningRelay:
    def __init__(self, engine: Engine, url: str, config: RelayConfig) -> None:
        self.stop = threading.Event()
        self.relay = OutboxRelay(config, OutboxStore(engine), RelayLeadership(url), self.stop)
        self.thread = threading.Thread(target=self.relay.run, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)


def wait_for_empty_outbox(engine: Engine, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while OutboxStore(engine).backlog()[0] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert OutboxStore(engine).backlog()[0] == 0


def config(bootstrap: str, topic: str) -> RelayConfig:
    return RelayConfig(
        bootstrap=bootstrap, topic=topic, partitions=4, batch_size=7, poll_seconds=0.5
    )


def test_relay_publishes_every_event_once_in_user_order(
    own_engine: Engine, database_url: str, kafka_bootstrap: str
) -> None:
    topic = random_name("events")
    users = [random_user() for _ in range(5)]
    click_many(own_engine, users, clicks=4, lease=0.01)  # expiries too: 2 events per click
    relay = RunningRelay(own_engine, database_url, config(kafka_bootstrap, topic))
    try:
        wait_for_empty_outbox(own_engine)
    finally:
        relay.close()
    stored = {u: run(command_store(own_engine).read_stream(u)) for u in users}
    total = sum(len(events) for events in stored.values())
    records = read_topic(kafka_bootstrap, topic, expect=total)
    assert len(records) == total
    for user, published in by_user(records).items():
        expected = stored[user]
        assert [r.value["version"] for r in published] == [e.version for e in expected]
        assert [r.headers["event_id"] for r in published] == [e.event_id for e in expected]
        assert [r.headers["event_type"] for r in published] == [e.event_type for e in expected]
        assert {r.value["user_id"] for r in published} == {user}
        assert len({r.partition for r in published}) == 1


def test_relay_wakes_on_notify_without_waiting_for_the_poll(
    own_engine: Engine, database_url: str, kafka_bootstrap: str
) -> None:
    topic = random_name("events")
    slow_poll = RelayConfig(bootstrap=kafka_bootstrap, topic=topic, partitions=1, poll_seconds=30)
    relay = RunningRelay(own_engine, database_url, slow_poll)
    try:
        click_many(own_engine, [random_user()], clicks=1)
        wait_for_empty_outbox(own_engine, timeout=20)
        time.sleep(1)  # the relay is now blocked in LISTEN with a 30 s poll
        began = time.monotonic()
        click_many(own_engine, [random_user()], clicks=1)
        wait_for_empty_outbox(own_engine, timeout=10)
        assert time.monotonic() - began < 10
    finally:
        relay.close()


def test_only_one_relay_leads(database_url: str) -> None:
    first, second = RelayLeadership(database_url), RelayLeadership(database_url)
    try:
        assert first.try_acquire()
        assert not second.try_acquire()
        first.release()
        assert second.try_acquire()
    finally:
        first.release()
        second.release()


def test_outbox_keeps_rows_while_broker_is_unreachable(
    own_engine: Engine, database_url: str
) -> None:
    from coordinator.dev.embedded import free_port

    dead = RelayConfig(
        bootstrap=f"127.0.0.1:{free_port()}", topic="t", partitions=1, max_backoff_seconds=0.5
    )
    click_many(own_engine, [random_user()], clicks=3)
    relay = RunningRelay(own_engine, database_url, dead)
    try:
        time.sleep(3)
    finally:
        relay.close()
    with own_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM outbox")).scalar() == 3
