"""Delivery to Kafka through the relay process: broker outages and a relay crash lose nothing."""

from __future__ import annotations

import time

import httpx
import pytest
from sqlalchemy import Engine, text

from coordinator.dev.embedded import free_port, start_tansu
from coordinator.relay.outbox_relay import CRASH_EXIT_CODE
from core.database import make_engine
from tests.e2e.processes import Api, running_api, running_relay
from tests.support.command_loop import command_store, run
from tests.support.kafka_topic import by_user, read_topic
from tests.support.random_refs import random_name, random_user


def outbox_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM outbox")).scalar_one())


def wait_for(condition: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def click(api: Api, users: list[str], times: int) -> None:
    for _ in range(times):
        for user in users:
            answer = httpx.post(f"{api.base_url}/sync/smart", headers=api.headers(user))
            assert answer.status_code == 202, answer.text


@pytest.fixture
def own_engine(database_url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(database_url, pool_size=2)
    yield engine
    engine.dispose()


def test_broker_outage_delays_delivery_and_loses_nothing(
    database_url: str, own_engine: Engine
) -> None:
    port = free_port()
    broker = start_tansu(port)
    topic = random_name("events")
    users = [random_user() for _ in range(4)]
    store = command_store(own_engine)
    try:
        with (
            running_api(database_url, reuse_window_seconds="0.5") as api,
            running_relay(database_url, broker.bootstrap, topic),
        ):
            click(api, users, 1)
            wait_for(lambda: outbox_rows(own_engine) == 0)
            broker.stop()
            before = {u: len(run(store.read_stream(u))) for u in users}
            for round_ in range(3):
                click(api, users, 1)  # the broker is down: commands still succeed
                time.sleep(0.6 if round_ < 2 else 0)  # let leases run out: expiries too
            assert outbox_rows(own_engine) > 0
            broker = start_tansu(port)  # memory storage: the topic comes back empty
            wait_for(lambda: outbox_rows(own_engine) == 0, timeout=60)
            during = {u: run(store.read_stream(u))[before[u] :] for u in users}
            expected = sum(len(events) for events in during.values())
            records = read_topic(broker.bootstrap, topic, expect=expected)
    finally:
        broker.stop()
    published = by_user(records)
    for user in users:
        wanted = [(e.event_id, e.version) for e in during[user]]
        seen = [(r.headers["event_id"], r.value["version"]) for r in published[user]]
        first_seen = list(dict.fromkeys(seen))
        assert first_seen == wanted  # every event, once or more, in version order
    assert {e.event_type for u in users for e in during[u]} >= {"SyncExpired", "SyncStarted"}


def test_relay_killed_before_deleting_republishes_same_ids_and_versions(
    database_url: str, own_engine: Engine, kafka_bootstrap: str
) -> None:
    topic = random_name("events")
    users = [random_user() for _ in range(3)]
    with running_api(database_url) as api:
        click(api, users, 3)
    store = command_store(own_engine)
    stored = {u: [(e.event_id, e.version) for e in run(store.read_stream(u))] for u in users}
    with running_relay(
        database_url, kafka_bootstrap, topic, relay_exit_after_publish="true"
    ) as crashing:
        assert crashing.wait(60) == CRASH_EXIT_CODE
    assert outbox_rows(own_engine) == 9  # published, acknowledged, but not deleted
    with running_relay(database_url, kafka_bootstrap, topic):
        wait_for(lambda: outbox_rows(own_engine) == 0)
    records = by_user(read_topic(kafka_bootstrap, topic, expect=18))
    for user in users:
        seen = [(r.headers["event_id"], r.value["version"]) for r in records[user]]
        assert seen == stored[user] + stored[user]


def test_database_unreachable_is_503_with_retry_after() -> None:
    nowhere = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/postgres"
    with running_api(nowhere) as api:
        answer = httpx.post(f"{api.base_url}/sync/smart", headers=api.headers(random_user()))
        ready = httpx.get(f"{api.base_url}/readyz")
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
    assert "database" in answer.json()["detail"]
    assert ready.status_code == 503


def test_lock_timeout_is_503_then_the_retry_succeeds(
    shared_database_url: str, engine: Engine
) -> None:
    user = random_user()
    with running_api(shared_database_url, lock_timeout_ms="300") as api:
        url = f"{api.base_url}/sync/smart"
        assert httpx.post(url, headers=api.headers(user)).status_code == 202
        with engine.begin() as conn:
            conn.execute(
                text("SELECT 1 FROM streams WHERE stream_id = :s FOR UPDATE"),
                {"s": f"UserSync-{user}"},
            )
            busy = httpx.post(url, headers=api.headers(user))
        after = httpx.post(url, headers=api.headers(user))
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "1"
    assert after.status_code == 202 and after.json()["reused"]
