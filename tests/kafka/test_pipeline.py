"""The whole pipeline on a three-broker Apache Kafka cluster, topic at RF 3 and
min.insync.replicas 2, and the tests of the other tiers that read the topic as an outsider
would, run here against Apache Kafka (this folder's `kafka_bootstrap` is the cluster's)."""

from __future__ import annotations

from coordinator.dev.apache_kafka import KafkaCluster
from tests.e2e.stack import running_stack
from tests.e2e.test_sync_lifecycle import EVERYTHING, click, watch_until
from tests.integration.test_event_versions import (
    own_engine,  # noqa: F401 (a fixture of the imported test)
)
from tests.integration.test_event_versions import (
    test_both_versions_rebuild_verify_and_validate_against_the_published_schemas as test_an_external_consumer_validates_every_record_against_the_published_schemas,  # noqa: E501
)
from tests.integration.test_replay_kafka import (
    test_topic_against_store as test_replay_compares_the_topic_with_the_store,
)
from tests.integration.test_replay_verify import verify
from tests.kafka.cluster_state import in_sync_replicas
from tests.kafka.load import stored_versions, topic_versions
from tests.support.random_refs import random_user

__all__ = [
    "test_an_external_consumer_validates_every_record_against_the_published_schemas",
    "test_replay_compares_the_topic_with_the_store",
]


def test_clicks_run_to_completion_and_the_topic_matches_the_store(
    cluster: KafkaCluster, database_url: str
) -> None:
    users = [random_user() for _ in range(3)]
    with running_stack(
        database_url,
        cluster.bootstrap,
        components=EVERYTHING,
        demo_messages="40",
        demo_pace="40",
        kafka_replication_factor="3",  # the compose layout: RF 3, min.insync 2
        kafka_min_insync_replicas="2",
        consumer_max_poll_interval_ms="300000",  # the production timing, not Tansu's
    ) as stack:
        started = {user: click(stack, user)["task_id"] for user in users}
        for user in users:
            final = watch_until(stack, user, lambda s: s["status"] == "completed")[-1]
            assert final["task_id"] == started[user]
        topic = stack.settings["kafka_topic"]
    assert set(in_sync_replicas(cluster.bootstrap, topic).values()) == {3}
    code, found, summary = verify(
        database_url, "--source", "kafka", kafka_bootstrap=cluster.bootstrap, kafka_topic=topic
    )
    assert (code, found) == (0, set()), found
    assert summary["records"] == summary["events"] >= 3 * 3  # started, progress, completed
    stored = stored_versions_of(database_url, users)
    assert topic_versions(cluster.bootstrap, topic, summary["records"]) == stored


def stored_versions_of(url: str, users: list[str]) -> dict[str, list[int]]:
    from core.database import make_engine

    engine = make_engine(url, pool_size=1)
    try:
        return stored_versions(engine, users)
    finally:
        engine.dispose()
