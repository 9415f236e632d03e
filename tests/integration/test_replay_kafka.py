"""`syncctl replay verify --source kafka`: the topic a real relay wrote, against the store."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from kafka import KafkaProducer
from sqlalchemy import Engine

from coordinator.service.handlers import Dependencies, handle
from core.database import libpq_url, make_engine
from core.domain.commands import RequestMeta, StartRequested
from core.domain.user_sync import stream_id_for
from tests.integration.test_outbox_relay import RunningRelay, config, wait_for_empty_outbox
from tests.integration.test_replay_verify import scripted, verify
from tests.support.command_loop import command_store, run
from tests.support.random_refs import random_name, random_user


@pytest.fixture
def own_engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=4)
    yield engine
    engine.dispose()


def relay_all(engine: Engine, url: str, bootstrap: str, topic: str) -> None:
    relay = RunningRelay(engine, url, config(bootstrap, topic))
    try:
        wait_for_empty_outbox(engine)
    finally:
        relay.close()


def click(engine: Engine, user: str) -> None:
    deps = Dependencies(command_store(engine), timedelta(minutes=30), 3)
    run(handle(StartRequested(user, False, RequestMeta(random_name("req"))), deps))


def outbox_payload(url: str, user: str, version: int) -> dict[str, Any]:
    with psycopg.connect(libpq_url(url)) as conn:
        row = conn.execute(
            "SELECT payload FROM outbox WHERE user_id = %s AND (payload->>'version')::int = %s",
            (user, version),
        ).fetchone()
    assert row
    return dict(row[0])


def stored_envelope(engine: Engine, user: str, version: int) -> dict[str, Any]:
    return run(command_store(engine).read_stream(user))[version - 1].to_json()


def produce(bootstrap: str, topic: str, user: str, body: dict[str, Any]) -> None:
    """One record as the relay would write it (same key, so the same partition)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        producer.send(
            topic,
            key=user.encode(),
            value=json.dumps(body).encode(),
            headers=[("event_id", str(body["event_id"]).encode())],
        ).get(timeout=10)
    finally:
        producer.close()


def test_topic_against_store(own_engine: Engine, database_url: str, kafka_bootstrap: str) -> None:
    topic = random_name("events")
    kafka = {"kafka_bootstrap": kafka_bootstrap, "kafka_topic": topic}
    users = scripted(own_engine)
    relay_all(own_engine, database_url, kafka_bootstrap, topic)
    code, found, summary = verify(database_url, "--source", "kafka", **kafka)
    assert (code, found) == (0, set())
    assert summary["records"] == summary["events"] == 11

    # A copy of a new user's version 2 reaches the topic before the relay publishes 1 and 2.
    early = random_user("z")
    click(own_engine, early)
    click(own_engine, early)
    produce(kafka_bootstrap, topic, early, outbox_payload(database_url, early, 2))
    relay_all(own_engine, database_url, kafka_bootstrap, topic)
    # An event whose outbox row vanished unpublished; another still waiting (not yet due).
    click(own_engine, users.done)
    with psycopg.connect(libpq_url(database_url)) as conn:
        conn.execute("DELETE FROM outbox WHERE user_id = %s", (users.done,))
    click(own_engine, users.reused)
    # A record the store never held, and a forged copy of a stored event.
    ghost = stored_envelope(own_engine, users.failed, 1) | {
        "event_id": str(uuid.uuid4()),
        "user_id": "ghost",
        "stream_id": stream_id_for("ghost"),
    }
    produce(kafka_bootstrap, topic, "ghost", ghost)
    forged = stored_envelope(own_engine, users.failed, 2)
    forged["data"] = forged["data"] | {"error": "nothing happened"}
    produce(kafka_bootstrap, topic, users.failed, forged)

    code, found, summary = verify(database_url, "--source", "kafka", **kafka)
    assert code == 1
    assert found == {
        ("kafka-order", stream_id_for(early), 1),
        ("kafka-missing", stream_id_for(users.done), 4),
        ("kafka-foreign", stream_id_for("ghost"), 1),
        ("kafka-mismatch", stream_id_for(users.failed), 2),
    }
    assert (summary["records"], summary["events"]) == (11 + 1 + 2 + 2, 11 + 2 + 2)
