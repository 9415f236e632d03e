"""The event topic: created with its layout before anything produces to or consumes from it.

Brokers in production refuse to create topics implicitly (auto.create.topics.enable=false),
and where one would (Tansu, a default Apache Kafka) a topic made by a client's metadata
request gets the broker's default layout, not ours: every client here asks for none.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import (
    KafkaError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
    for_code,
)

from coordinator.adapters.kafka.publisher import PublishFailed

log = logging.getLogger("coordinator.relay")


@dataclass(frozen=True)
class TopicLayout:
    """How a topic is spread: partitions and replicas of each."""

    partitions: int
    replication_factor: int


def ensure_topic(
    bootstrap: str,
    topic: str,
    partitions: int,
    replication_factor: int = 1,
    min_insync_replicas: int | None = None,
) -> TopicLayout:
    """Create the topic if it does not exist yet; the layout it has either way.

    An existing topic is left as it is: adding partitions would move users' keys to other
    partitions and break their order, so a different layout is only logged.
    """
    wanted = TopicLayout(partitions, replication_factor)
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap, request_timeout_ms=5000, bootstrap_timeout_ms=3000
        )
    except KafkaError as error:
        raise PublishFailed(f"broker unreachable: {error!r}") from error
    try:
        found = _layout(admin, topic)
        if found is None:
            _create(admin, topic, wanted, min_insync_replicas)
            return wanted
    except KafkaError as error:
        raise PublishFailed(f"cannot create topic {topic}: {error!r}") from error
    finally:
        admin.close()
    if found != wanted:
        log.warning(
            "topic %s exists with %d partitions and replication factor %d; the settings ask "
            "for %d and %d (SYNC_KAFKA_PARTITIONS, SYNC_KAFKA_REPLICATION_FACTOR); left as it is",
            topic,
            found.partitions,
            found.replication_factor,
            wanted.partitions,
            wanted.replication_factor,
        )
    return found


def _layout(admin: KafkaAdminClient, topic: str) -> TopicLayout | None:
    """The topic's layout, or None if the broker does not know it."""
    (described,) = admin.describe_topics([topic])
    if described["error_code"] == UnknownTopicOrPartitionError.errno:
        return None
    if described["error_code"]:
        raise for_code(described["error_code"])(f"describing topic {topic}")
    replicas = len(described["partitions"][0]["replica_nodes"])
    return TopicLayout(len(described["partitions"]), replicas)


def _create(
    admin: KafkaAdminClient, topic: str, layout: TopicLayout, min_insync_replicas: int | None
) -> None:
    # Checked here because some brokers (Tansu) accept any factor and keep one copy.
    brokers = len(admin.describe_cluster()["brokers"])
    if layout.replication_factor > brokers:
        raise PublishFailed(
            f"cannot create topic {topic} with replication factor {layout.replication_factor} "
            f"(SYNC_KAFKA_REPLICATION_FACTOR): the cluster has {brokers} live broker(s)"
        )
    configs = (
        {} if min_insync_replicas is None else {"min.insync.replicas": str(min_insync_replicas)}
    )
    new = NewTopic(topic, layout.partitions, layout.replication_factor, topic_configs=configs)
    with contextlib.suppress(TopicAlreadyExistsError):  # another relay was quicker
        admin.create_topics([new])


def ensure_topic_waiting(
    bootstrap: str,
    topic: str,
    partitions: int,
    replication_factor: int = 1,
    min_insync_replicas: int | None = None,
    wait_seconds: float = 0,
) -> TopicLayout:
    """ensure_topic, retrying a broker that is still starting for `wait_seconds`."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return ensure_topic(
                bootstrap, topic, partitions, replication_factor, min_insync_replicas
            )
        except PublishFailed as error:
            if time.monotonic() >= deadline:
                raise
            log.info("%s; retrying", error)
            time.sleep(1)
