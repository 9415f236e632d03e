"""A record over the topic's max.message.bytes (below the relay's own limit): it becomes a
dead letter, the rest of its batch is published, and republishing it works once the limit is
raised. The relay reads the topic's limit from the broker; lowered under a running relay,
the broker itself refuses the record, and the outcome is the same."""

from __future__ import annotations

from collections.abc import Iterator
from io import StringIO

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from sqlalchemy import Engine

from coordinator import cli
from coordinator.adapters.postgres.outbox_store import OutboxStore
from coordinator.dev.apache_kafka import KafkaCluster
from core.database import make_engine
from core.settings import Settings
from tests.integration.test_dead_letters import interleaved, relay_config, relay_until_empty
from tests.integration.test_outbox_relay import RunningRelay, wait_for_empty_outbox
from tests.kafka.load import first_seen
from tests.support.kafka_topic import by_user, read_topic
from tests.support.random_refs import random_name, random_user
from tests.support.stored_history import lifecycle, write

TOPIC_LIMIT = 100_000  # the topic's max.message.bytes; the relay's stays at 1,000,000
BIG = {"blob": "x" * 150_000}


@pytest.fixture
def own_engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=4)
    yield engine
    engine.dispose()


def create_limited_topic(bootstrap: str, topic: str, limit: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        configs = {"max.message.bytes": str(limit), "min.insync.replicas": "2"}
        admin.create_topics([NewTopic(topic, 4, 3, topic_configs=configs)])
    finally:
        admin.close()


def raise_limit(bootstrap: str, topic: str, limit: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        change = {"max.message.bytes": str(limit), "min.insync.replicas": "2"}
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=change)])
    finally:
        admin.close()


def test_a_record_over_the_topic_s_limit_is_set_aside_and_republished_after_a_raise(
    cluster: KafkaCluster, own_engine: Engine, database_url: str
) -> None:
    topic = random_name("events")
    create_limited_topic(cluster.bootstrap, topic, TOPIC_LIMIT)
    big = lifecycle(random_user("big"), BIG)
    others = [lifecycle(random_user(), {"messages": i}) for i in range(30)]
    # The big user comes first in each round: its oversized event heads a batch of others.
    write(database_url, [big, *others], interleaved([big, *others]))

    relay = relay_until_empty(own_engine, database_url, relay_config(cluster.bootstrap, topic))

    assert (relay.relay.published, relay.relay.dead_lettered) == (3 * 31 - 1, 1)
    [letter] = OutboxStore(own_engine).dead_letters.entries()
    assert (letter.event_id, letter.version) == (big.envelopes[1].event_id, 2)
    assert TOPIC_LIMIT < letter.size_bytes < 1_000_000
    # The topic's limit, as the broker told the relay, not the relay's own setting.
    assert "MessageSizeTooLargeError" in letter.reason, letter.reason
    assert f"max.message.bytes, {topic}" in letter.reason, letter.reason
    records = by_user(read_topic(cluster.bootstrap, topic, expect=3 * 31 - 1))
    found = {h.user_id: [r.value["version"] for r in records[h.user_id]] for h in others}
    assert found == {h.user_id: [1, 2, 3] for h in others}
    assert [r.value["version"] for r in records[big.user_id]] == [1, 3]

    raise_limit(cluster.bootstrap, topic, 1_000_000)
    settings = Settings(database_url=database_url)
    out = StringIO()
    assert cli.run(settings, ["deadletters", "republish", "--all"], out=out, err=StringIO()) == 0
    relay = relay_until_empty(own_engine, database_url, relay_config(cluster.bootstrap, topic))
    assert (relay.relay.published, relay.relay.dead_lettered) == (1, 0)
    records = by_user(read_topic(cluster.bootstrap, topic, expect=3 * 31))
    assert [r.value["version"] for r in records[big.user_id]] == [1, 3, 2]
    assert OutboxStore(own_engine).dead_letters.count() == 0


def test_a_limit_lowered_under_a_running_relay_is_the_broker_s_refusal(
    cluster: KafkaCluster, own_engine: Engine, database_url: str
) -> None:
    topic = random_name("events")
    create_limited_topic(cluster.bootstrap, topic, 1_000_000)
    first = [lifecycle(random_user(), {"messages": i}) for i in range(3)]
    write(database_url, first, interleaved(first))
    relay = RunningRelay(own_engine, database_url, relay_config(cluster.bootstrap, topic))
    try:
        wait_for_empty_outbox(own_engine, timeout=60)  # it read the limit: 1,000,000
        raise_limit(cluster.bootstrap, topic, TOPIC_LIMIT)  # lowered behind its back
        big = lifecycle(random_user("big"), BIG)
        others = [lifecycle(random_user(), {"messages": i}) for i in range(20)]
        write(database_url, [big, *others], interleaved([big, *others]))
        wait_for_empty_outbox(own_engine, timeout=60)
    finally:
        relay.close()
    assert relay.relay.dead_lettered == 1
    [letter] = OutboxStore(own_engine).dead_letters.entries()
    assert letter.event_id == big.envelopes[1].event_id
    assert f"the topic's limit: {TOPIC_LIMIT:,} bytes" in letter.reason, letter.reason
    records = by_user(read_topic(cluster.bootstrap, topic, expect=3 * 24 - 1))
    # The batch the refusal failed was sent again: at least once, each user's first copies
    # in version order.
    found = {
        h.user_id: first_seen([r.value["version"] for r in records[h.user_id]])
        for h in [*first, *others]
    }
    assert found == {h.user_id: [1, 2, 3] for h in [*first, *others]}
    assert first_seen([r.value["version"] for r in records[big.user_id]]) == [1, 3]
