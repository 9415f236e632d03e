"""One three-node Apache Kafka cluster (KRaft) for the whole tier, shared by its tests.

The tier never skips: without Java or the Kafka jars it fails, naming the install step.
`kafka_bootstrap` is overridden here, so the broker tests of the other tiers imported into
this folder run on Apache Kafka instead of Tansu.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from coordinator.dev.apache_kafka import KafkaCluster, KafkaUnavailable, start_cluster


@pytest.fixture(scope="session")
def apache_kafka() -> Iterator[KafkaCluster]:
    root = Path(tempfile.mkdtemp(prefix="sync-test-kafka-"))
    try:
        try:
            cluster = start_cluster(root, 3)
        except KafkaUnavailable as error:
            pytest.fail(f"Apache Kafka could not start: {error}", pytrace=False)
        try:
            yield cluster
        finally:
            cluster.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def cluster(apache_kafka: KafkaCluster) -> KafkaCluster:
    """The shared cluster with all three nodes up: a test before may have killed some."""
    for node in apache_kafka.nodes:
        if not node.running():
            apache_kafka.start(node.node_id)
    apache_kafka.wait_ready()
    return apache_kafka


@pytest.fixture(scope="session")
def kafka_bootstrap(apache_kafka: KafkaCluster) -> str:
    return apache_kafka.bootstrap
