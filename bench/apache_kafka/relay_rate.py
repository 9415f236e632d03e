"""The relay against a raw kafka-python producer: the same records, the same settings.

The relay reads outbox rows, publishes them in batches (acks=all, idempotent) and deletes
what the brokers acknowledged. The baseline sends the same records (key, value, headers) with
the relay's producer settings and flushes once at the end: Kafka's part alone.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from kafka import KafkaProducer
from psycopg.types.json import Jsonb

from bench.end_to_end.backlog import interleaved, make_backlog
from coordinator.adapters.kafka.publisher import encode
from coordinator.adapters.kafka.topic import ensure_topic
from coordinator.adapters.postgres.outbox_store import OutboxRow, OutboxStore, RelayLeadership
from coordinator.relay.outbox_relay import OutboxRelay, RelayConfig, to_message
from core.database import make_engine

PARTITIONS = 8


@dataclass(frozen=True)
class Rates:
    relay: float
    raw: float

    @property
    def ratio(self) -> float:
        return self.relay / self.raw


def outbox_rows(events: int, users: int) -> list[dict[str, Any]]:
    return [
        {"event_id": e.event_id, "user_id": e.user_id, "payload": e.to_json()}
        for e in interleaved(make_backlog(events, users))
    ]


def fill_outbox(dsn: str, rows: list[dict[str, Any]]) -> None:
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO outbox (event_id, user_id, payload) VALUES (%s, %s, %s)",
            [(r["event_id"], r["user_id"], Jsonb(r["payload"])) for r in rows],
        )


def relay_rate(url: str, dsn: str, bootstrap: str, topic: str, count: int) -> float:
    """Events per second from the first batch to an empty outbox."""
    ensure_topic(bootstrap, topic, PARTITIONS, 3, 2)
    engine = make_engine(url, pool_size=2)
    stop = threading.Event()
    config = RelayConfig(
        bootstrap=bootstrap,
        topic=topic,
        partitions=PARTITIONS,
        replication_factor=3,
        min_insync_replicas=2,
    )
    relay = OutboxRelay(config, OutboxStore(engine), RelayLeadership(url), stop)
    thread = threading.Thread(target=relay.run, daemon=True)
    started = time.perf_counter()
    thread.start()
    try:
        while relay.published < count:
            time.sleep(0.01)
        return count / (time.perf_counter() - started)
    finally:
        stop.set()
        thread.join(30)
        engine.dispose()


def raw_rate(bootstrap: str, topic: str, rows: list[dict[str, Any]]) -> float:
    """The same records through a plain producer with the relay's settings."""
    ensure_topic(bootstrap, topic, PARTITIONS, 3, 2)
    records = [
        encode(to_message(OutboxRow(0, r["event_id"], r["user_id"], r["payload"]))) for r in rows
    ]
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        acks="all",
        linger_ms=2,
        max_in_flight_requests_per_connection=5,
        request_timeout_ms=5000,
        delivery_timeout_ms=30_000,
        allow_auto_create_topics=False,
    )
    try:
        started = time.perf_counter()
        futures = [
            producer.send(topic, key=r.key, value=r.value, headers=r.headers) for r in records
        ]
        producer.flush()
        for future in futures:
            future.get(timeout=0)
        return len(records) / (time.perf_counter() - started)
    finally:
        producer.close()
