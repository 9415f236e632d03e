"""Topic creation from the settings, against the real broker (Tansu: one broker)."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from kafka import KafkaAdminClient
from sqlalchemy import Engine

from coordinator.adapters.kafka.publisher import PublishFailed
from coordinator.adapters.kafka.topic import TopicLayout, ensure_topic
from coordinator.adapters.postgres.outbox_store import OutboxStore
from coordinator.relay.outbox_relay import RelayConfig
from core.database import make_engine
from tests.e2e.processes import process_env
from tests.integration.test_outbox_relay import RunningRelay, click_many, wait_for_empty_outbox
from tests.support.random_refs import random_name, random_user


def described(bootstrap: str, topic: str) -> TopicLayout | None:
    """The topic as the broker describes it, asked without the code under test."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        (found,) = admin.describe_topics([topic])
    finally:
        admin.close()
    if found["error_code"]:
        return None
    return TopicLayout(len(found["partitions"]), len(found["partitions"][0]["replica_nodes"]))


@pytest.fixture
def own_engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=4)
    yield engine
    engine.dispose()


def test_topic_is_created_with_the_configured_partitions(kafka_bootstrap: str) -> None:
    topic = random_name("events")
    layout = ensure_topic(kafka_bootstrap, topic, partitions=5, replication_factor=1)
    assert layout == TopicLayout(partitions=5, replication_factor=1)
    assert described(kafka_bootstrap, topic) == TopicLayout(5, 1)


def test_more_replicas_than_brokers_is_refused_naming_the_setting(kafka_bootstrap: str) -> None:
    topic = random_name("events")
    with pytest.raises(PublishFailed, match=r"SYNC_KAFKA_REPLICATION_FACTOR.*1 live broker"):
        ensure_topic(kafka_bootstrap, topic, partitions=3, replication_factor=3)
    assert described(kafka_bootstrap, topic) is None


def test_an_existing_topic_is_left_as_it_is_and_the_difference_logged(
    kafka_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    topic = random_name("events")
    ensure_topic(kafka_bootstrap, topic, partitions=2)
    with caplog.at_level(logging.WARNING, logger="coordinator.relay"):
        layout = ensure_topic(kafka_bootstrap, topic, partitions=6)
    assert layout == TopicLayout(2, 1)
    assert described(kafka_bootstrap, topic) == TopicLayout(2, 1)
    assert "exists with 2 partitions" in caplog.text


def test_syncctl_topic_creates_the_topic_from_the_settings(kafka_bootstrap: str) -> None:
    topic = random_name("events")
    env = process_env(
        kafka_bootstrap=kafka_bootstrap,
        kafka_topic=topic,
        kafka_partitions="3",
        kafka_min_insync_replicas="1",
    )
    done = subprocess.run(
        [sys.executable, "-m", "coordinator.cli", "topic"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert f"topic {topic}: 3 partitions, 1 replicas" in done.stdout
    assert described(kafka_bootstrap, topic) == TopicLayout(3, 1)


def test_syncctl_topic_fails_when_the_cluster_is_too_small(kafka_bootstrap: str) -> None:
    topic = random_name("events")
    env = process_env(
        kafka_bootstrap=kafka_bootstrap, kafka_topic=topic, kafka_replication_factor="3"
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "coordinator.cli", "topic", "--wait", "3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "replication factor 3 (SYNC_KAFKA_REPLICATION_FACTOR)" in done.stderr
    assert time.monotonic() - started >= 3  # it retried for the time it was given
    assert described(kafka_bootstrap, topic) is None


def test_relay_creates_the_topic_with_its_configured_layout(
    own_engine: Engine, database_url: str, kafka_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    topic = random_name("events")
    click_many(own_engine, [random_user() for _ in range(3)], clicks=1)
    too_many = RelayConfig(kafka_bootstrap, topic, partitions=3, replication_factor=3)
    with caplog.at_level(logging.WARNING, logger="coordinator.relay"):
        relay = RunningRelay(own_engine, database_url, too_many)
        try:
            time.sleep(2)
        finally:
            relay.close()
    assert OutboxStore(own_engine).backlog()[0] == 3  # events wait, none lost
    assert "SYNC_KAFKA_REPLICATION_FACTOR" in caplog.text
    assert described(kafka_bootstrap, topic) is None

    fits = RelayConfig(kafka_bootstrap, topic, partitions=3, poll_seconds=0.2)
    relay = RunningRelay(own_engine, database_url, fits)
    try:
        wait_for_empty_outbox(own_engine)
    finally:
        relay.close()
    assert described(kafka_bootstrap, topic) == TopicLayout(3, 1)
