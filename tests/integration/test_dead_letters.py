"""A record the broker refuses for good is set aside; everyone else's events keep flowing.

Real PostgreSQL and the real broker. The oversized event is written below the API, as the
event store would write it, because the API refuses to store such an event at all.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import fields
from io import StringIO
from typing import Any
from uuid import uuid4

import pytest
from sqlalchemy import Engine, text

from coordinator import cli
from coordinator.adapters.postgres.outbox_store import OutboxStore
from coordinator.api.metrics import StoredStateCollector
from coordinator.cli import main
from coordinator.relay.outbox_relay import RelayConfig
from core.database import make_engine
from core.settings import Settings
from projections.read_models import ReadModels
from projections.status_view import StatusRow, apply_status
from tests.integration.test_outbox_relay import RunningRelay, wait_for_empty_outbox
from tests.integration.test_projector import ProjectorThread
from tests.support.kafka_topic import Record, by_user, read_topic
from tests.support.random_refs import random_name, random_user
from tests.support.stored_history import History, lifecycle, write

OVERSIZED = {"blob": "x" * 1_100_000}  # over Kafka's default max.message.bytes of 1,000,000


@pytest.fixture
def own_engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=4)
    yield engine
    engine.dispose()


def interleaved(histories: list[History]) -> list[Any]:
    """Every user's first event, then every second, then every third: the order of a busy day."""
    return [h.envelopes[v] for v in range(3) for h in histories]


def relay_config(bootstrap: str, topic: str, **changes: Any) -> RelayConfig:
    base = RelayConfig(bootstrap=bootstrap, topic=topic, partitions=4, poll_seconds=0.2)
    return RelayConfig(**{f.name: getattr(base, f.name) for f in fields(base)} | changes)


def relay_until_empty(engine: Engine, url: str, config: RelayConfig) -> RunningRelay:
    relay = RunningRelay(engine, url, config)
    try:
        wait_for_empty_outbox(engine, timeout=90)
    finally:
        relay.close()
    return relay


def versions(records: list[Record]) -> list[int]:
    return [r.value["version"] for r in records]


def test_an_oversized_event_is_set_aside_while_a_thousand_other_users_are_delivered(
    own_engine: Engine, database_url: str, kafka_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    topic = random_name("events")
    big = lifecycle(random_user("big"), OVERSIZED)
    others = [lifecycle(random_user(), {"messages": i}) for i in range(1000)]
    # The big user comes first in each round: its oversized event heads a batch.
    write(database_url, [big, *others], interleaved([big, *others]))
    caplog.set_level(logging.ERROR, logger="coordinator.relay")

    relay = relay_until_empty(own_engine, database_url, relay_config(kafka_bootstrap, topic))

    refused = big.envelopes[1]
    assert (relay.relay.published, relay.relay.dead_lettered) == (3001 + 1, 1)
    records = by_user(read_topic(kafka_bootstrap, topic, expect=3002, timeout=60))
    assert len(records) == 1001
    for history in others:
        published = records[history.user_id]
        assert versions(published) == [1, 2, 3]
        assert [r.headers["event_id"] for r in published] == [e.event_id for e in history.envelopes]
    assert versions(records[big.user_id]) == [1, 3]  # a gap where the refused event was

    [letter] = OutboxStore(own_engine).dead_letters.entries()
    assert (letter.event_id, letter.user_id, letter.stream_id) == (
        refused.event_id,
        big.user_id,
        big.stream_id,
    )
    assert (letter.version, letter.event_type) == (2, "SyncProgressed")
    assert letter.size_bytes > 1_100_000
    assert "MessageSizeTooLargeError" in letter.reason and "1,000,000" in letter.reason
    with own_engine.connect() as conn:
        payload = conn.execute(text("SELECT payload FROM dead_letters")).scalar_one()
    assert payload == json.loads(json.dumps(refused.to_json()))

    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(refused.event_id in m and big.user_id in m and "1,000,000" in m for m in logged)
    collector = StoredStateCollector(OutboxStore(own_engine), ReadModels(own_engine))
    gauges = {m.name: m.samples[0].value for m in collector.collect() if m.samples}
    assert gauges["sync_dead_letters"] == 1
    assert gauges["sync_outbox_backlog"] == 0


def set_one_aside(engine: Engine, url: str, bootstrap: str, topic: str) -> tuple[History, int]:
    """Three users and one oversized event, relayed: (the big user's history, records sent)."""
    big = lifecycle(random_user("big"), OVERSIZED)
    others = [lifecycle(random_user(), {"messages": i}) for i in range(3)]
    write(url, [big, *others], interleaved([big, *others]))
    relay = relay_until_empty(engine, url, relay_config(bootstrap, topic))
    assert relay.relay.dead_lettered == 1
    return big, relay.relay.published


def test_the_cli_lists_a_dead_letter_and_verify_reports_it(
    own_engine: Engine,
    database_url: str,
    kafka_bootstrap: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic = random_name("events")
    big, published = set_one_aside(own_engine, database_url, kafka_bootstrap, topic)
    refused = big.envelopes[1]
    settings = Settings(
        database_url=database_url, kafka_bootstrap=kafka_bootstrap, kafka_topic=topic
    )

    table = StringIO()
    assert cli.run(settings, ["deadletters", "list"], out=table) == 0
    lines = table.getvalue().splitlines()
    assert lines[0].split()[:3] == ["DEAD", "AT", "EVENT"] and lines[-1] == "1 dead letters"
    assert refused.event_id in lines[1] and big.user_id in lines[1]
    assert "MessageSizeTooLargeError" in lines[1]

    monkeypatch.setenv("SYNC_DATABASE_URL", database_url)
    assert main(["deadletters", "list", "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["count"] == 1
    assert listed["dead_letters"][0]["event_id"] == refused.event_id
    assert listed["dead_letters"][0]["version"] == 2

    # The store verifies clean but for the dead letter: exit 1, one finding, its repair named.
    out = StringIO()
    assert cli.run(settings, ["replay", "verify", "--format", "json"], out=out, err=StringIO()) == 1
    [finding] = json.loads(out.getvalue())["violations"]
    assert (finding["rule"], finding["stream_id"], finding["version"]) == (
        "dead-letter",
        big.stream_id,
        2,
    )
    assert f"republish --event-id {refused.event_id}" in finding["detail"]
    # On the topic the event is absent for a known reason: a dead letter, not kafka-missing.
    out = StringIO()
    argv = ["verify", "--source", "kafka", "--format", "json"]
    assert cli.run(settings, ["replay", *argv], out=out, err=StringIO()) == 1
    report = json.loads(out.getvalue())
    assert report["summary"]["records"] == published
    assert [(v["rule"], v["version"]) for v in report["violations"]] == [("dead-letter", 2)]


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def projected_status(engine: Engine, user_id: str) -> StatusRow | None:
    columns = ", ".join(f.name for f in fields(StatusRow))
    with engine.connect() as conn:
        row = (
            conn.execute(
                text(f"SELECT {columns} FROM sync_status WHERE user_id = :u"), {"u": user_id}
            )
            .mappings()
            .one_or_none()
        )
    return StatusRow(**row) if row else None


def folded_status(history: History) -> StatusRow:
    status: StatusRow | None = None
    for envelope in history.envelopes:
        status = apply_status(status, envelope)
    assert status is not None
    return status


def test_the_projector_fills_the_gap_and_republish_delivers_the_event_after_a_fix(
    own_engine: Engine, database_url: str, kafka_bootstrap: str
) -> None:
    topic = random_name("events")
    projector = ProjectorThread(database_url, kafka_bootstrap, topic, random_name("group"))
    try:
        big, published = set_one_aside(own_engine, database_url, kafka_bootstrap, topic)
        expected = folded_status(big)
        # Version 3 arrives with 2 missing: the projector reads 2 from the store first.
        wait_for(lambda: projected_status(own_engine, big.user_id) == expected, "the gap filled")
        assert expected.last_version == 3 and expected.status == "completed"
        wait_for(lambda: projector.projector.consumed >= published, "every record consumed")
        applied = projector.projector.applied
        assert applied == 3 * 4  # every stored event once, the refused one from the store

        settings = Settings(database_url=database_url)
        refused = big.envelopes[1].event_id
        unknown = str(uuid4())
        out, err = StringIO(), StringIO()
        argv = ["republish", "--event-id", refused, "--event-id", unknown]
        assert (
            cli.run(settings, ["deadletters", *argv], out=out, err=err) == 1
        )  # one id was no dead letter
        assert f"republished {refused}" in out.getvalue()
        assert f"{unknown} is not a dead letter" in err.getvalue()
        assert OutboxStore(own_engine).dead_letters.count() == 0
        assert OutboxStore(own_engine).backlog()[0] == 1

        # The fix: the broker's and the relay's limit raised above the event's size.
        raised = relay_config(kafka_bootstrap, topic, max_message_bytes=4_000_000)
        relay = relay_until_empty(own_engine, database_url, raised)
        assert (relay.relay.published, relay.relay.dead_lettered) == (1, 0)
        records = by_user(read_topic(kafka_bootstrap, topic, expect=published + 1))
        assert versions(records[big.user_id]) == [1, 3, 2]
        assert records[big.user_id][-1].headers["event_id"] == refused

        # The late version 2 is a redelivery to the projector: consumed, not applied again.
        wait_for(lambda: projector.projector.consumed >= published + 1, "the late record")
        assert projector.projector.applied == applied
        assert projected_status(own_engine, big.user_id) == expected
    finally:
        projector.close()
    out = StringIO()
    assert cli.run(settings, ["replay", "verify"], out=out, err=StringIO()) == 0, out.getvalue()
