"""A store and a topic holding SyncStarted of versions 1 and 2: everyone reads both alike.

Events of version 1 are made the way they were written before version 2 existed: the rows and
outbox payloads without the new fields, schema_version 1, the chain sealed over that content.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import get_args

import psycopg
import pytest
from jsonschema import Draft202012Validator, FormatChecker
from sqlalchemy import Engine

from coordinator.service.handlers import Dependencies, handle
from core.database import libpq_url, make_engine
from core.domain.commands import (
    CompleteSync,
    ReportProgress,
    RequestMeta,
    StartRequested,
)
from core.domain.events import StartReason, SyncStarted
from core.domain.user_sync import stream_id_for
from core.kafka.event_source import Delivery, decode
from projections.batches import apply_batch
from projections.store import ProjectionStore
from tests.integration.test_projector import projected_views, random_workload, stored_views
from tests.integration.test_replay_kafka import relay_all
from tests.integration.test_replay_verify import replay, reseal, tamper, verify
from tests.support.command_loop import command_store, run
from tests.support.kafka_topic import read_topic
from tests.support.random_refs import random_name, random_user

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"
V1_ROWS = (
    "UPDATE events SET schema_version = 1, data = data - 'reason' - 'requested_by' "
    "WHERE stream_id = %s AND event_type = 'SyncStarted'"
)
V1_PAYLOADS = (
    "UPDATE outbox SET payload = jsonb_set(jsonb_set(payload, '{schema_version}', '1'), "
    "'{data}', (payload->'data') - 'reason' - 'requested_by') "
    "WHERE user_id = %s AND payload->>'event_type' = 'SyncStarted'"
)


@pytest.fixture
def own_engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=4)
    yield engine
    engine.dispose()


def meta() -> RequestMeta:
    return RequestMeta(random_name("req"), client="mail-app/1.0")


def before_the_upgrade(engine: Engine, url: str, user: str) -> None:
    """Completion, a task left to lapse and its replacement, then written back as version 1."""
    store = command_store(engine)
    lease, lapsing = (Dependencies(store, timedelta(minutes=m), 3) for m in (30, 0))
    run(handle(StartRequested(user, False, meta()), lease))
    task = run(store.snapshot(user))[1].task_id or ""
    run(handle(ReportProgress(user, task, 50.0, {"m": 5}, meta()), lease))
    run(handle(CompleteSync(user, task, {"m": 10}, meta()), lease))
    run(handle(StartRequested(user, False, meta()), lapsing))
    run(handle(StartRequested(user, False, meta()), lease))  # expires the lapsed one, replaces it
    tamper(url, V1_ROWS, (stream_id_for(user),))
    with psycopg.connect(libpq_url(url)) as conn:
        conn.execute(V1_PAYLOADS, (user,))
    reseal(url, user)


def after_the_upgrade(engine: Engine, user: str) -> None:
    """A full sync queued behind the running task, started when it completes (version 2)."""
    store = command_store(engine)
    lease = Dependencies(store, timedelta(minutes=30), 3)
    run(handle(StartRequested(user, True, meta()), lease))
    run(handle(CompleteSync(user, run(store.snapshot(user))[1].task_id or "", {}, meta()), lease))


def test_both_versions_rebuild_verify_and_validate_against_the_published_schemas(
    own_engine: Engine, database_url: str, kafka_bootstrap: str
) -> None:
    old, mixed = [random_user("old") for _ in range(3)], random_user("mixed")
    for user in [*old, mixed]:
        before_the_upgrade(own_engine, database_url, user)
    after_the_upgrade(own_engine, mixed)
    new = [random_user("new") for _ in range(8)]
    random_workload(own_engine, new, commands=120, seed=1212)
    users = [*old, mixed, *new]

    topic = random_name("events")
    relay_all(own_engine, database_url, kafka_bootstrap, topic)
    with psycopg.connect(libpq_url(database_url)) as conn:
        stored = conn.execute("SELECT count(*) FROM events").fetchone()
    assert stored
    records = read_topic(kafka_bootstrap, topic, expect=stored[0])
    assert len(records) == stored[0]

    # An external consumer: the published schemas and the jsonschema package, nothing of ours.
    checker = FormatChecker()
    envelope = Draft202012Validator(json.loads((SCHEMAS / "envelope.schema.json").read_text()))
    versions: dict[int, int] = {}
    for record in records:
        body = record.value
        own = f"{body['event_type']}.schema.json"
        if body["schema_version"] == 1 and body["event_type"] == "SyncStarted":
            own = "SyncStarted.v1.schema.json"
            versions[1] = versions.get(1, 0) + 1
        elif body["event_type"] == "SyncStarted":
            versions[2] = versions.get(2, 0) + 1
        schema = json.loads((SCHEMAS / own).read_text())
        errors = [
            e.message
            for e in Draft202012Validator(schema, format_checker=checker).iter_errors(body)
        ]
        assert errors == [], (own, body)
        assert envelope.is_valid(body), body
    assert versions[1] == 3 * (len(old) + 1) and versions[2] > len(new)

    # The decoder the projector, the worker and the webhook dispatcher share reads both alike.
    deliveries = []
    for record in records:
        raw = json.dumps(record.value).encode()
        envelope_read = decode(raw, record.partition, record.offset)
        assert envelope_read is not None
        if isinstance(envelope_read.data, SyncStarted):
            assert envelope_read.data.reason in get_args(StartReason)
        deliveries.append(Delivery(record.partition, record.offset, envelope_read))
    projections = ProjectionStore(database_url)
    try:
        apply_batch(projections, deliveries)
    finally:
        projections.close()
    assert projected_views(own_engine, users) == stored_views(own_engine, users)

    code, out, _ = replay(database_url, "rebuild")
    assert code == 0 and out.splitlines()[-1] == "0 differing rows (status 0, tasks 0)", out
    for source in ((), ("--source", "kafka")):
        kafka = {"kafka_bootstrap": kafka_bootstrap, "kafka_topic": topic} if source else {}
        code, found, _ = verify(database_url, *source, **kafka)
        assert (code, found) == (0, set()), found
    with psycopg.connect(libpq_url(database_url)) as conn:
        reasons: dict[str, int] = dict(
            conn.execute(
                "SELECT start_reason, count(*) FROM sync_tasks WHERE user_id = ANY(%s) "
                "GROUP BY start_reason",
                (users,),
            ).fetchall()
        )
    assert reasons.get("replaced_expired", 0) >= len(old) + 1
    assert reasons.get("queued_full_sync", 0) >= 1
