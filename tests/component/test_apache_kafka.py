"""docker-compose.yml's brokers and the local cluster the tests and `syncctl dev --kafka apache`
start are the same Apache Kafka: one version, one set of broker settings."""

from __future__ import annotations

import re
from pathlib import Path

from coordinator.dev.apache_kafka import (
    CLUSTER_SETTINGS,
    KAFKA_VERSION,
    LOCAL_SETTINGS,
    KafkaNode,
    properties,
    settings_for,
)
from tests.component.test_compose import SERVICES

ROOT = Path(__file__).resolve().parents[2]
# Where a node is and who it is: addresses differ between containers and loopback ports.
PLACEMENT = {
    "node.id",
    "listeners",
    "advertised.listeners",
    "controller.quorum.voters",
    "log.dirs",
}


def compose_brokers() -> dict[str, dict[str, str]]:
    return {
        name: {str(k): str(v) for k, v in service["environment"].items()}
        for name, service in SERVICES.items()
        if str(service.get("image", "")).startswith("apache/kafka:")
    }


def as_properties(environment: dict[str, str]) -> dict[str, str]:
    """The apache/kafka image's mapping: KAFKA_FOO_BAR=x is foo.bar=x."""
    return {
        key.removeprefix("KAFKA_").lower().replace("_", "."): value
        for key, value in environment.items()
        if key.startswith("KAFKA_")
    }


def launched() -> dict[str, str]:
    node = KafkaNode(1, 9092, 9093, Path("/data"))
    settings = {**settings_for(3), **LOCAL_SETTINGS}
    text = properties(node, "1@127.0.0.1:9093", settings)
    return dict(line.split("=", 1) for line in text.splitlines())


def test_one_version_in_compose_the_launcher_and_the_maven_pom() -> None:
    images = {SERVICES[name]["image"] for name in compose_brokers()}
    assert images == {f"apache/kafka:{KAFKA_VERSION}"}
    pom = (ROOT / "scripts" / "apache-kafka" / "pom.xml").read_text()
    assert re.findall(r"<kafka.version>(.+)</kafka.version>", pom) == [KAFKA_VERSION]
    assert KAFKA_VERSION.split(".")[0] == "4"


def test_compose_brokers_and_the_launched_nodes_have_the_same_settings() -> None:
    local = launched()
    for name, environment in compose_brokers().items():
        compose = as_properties(environment)
        shared = {k: v for k, v in compose.items() if k not in PLACEMENT}
        # Everything compose sets, the launcher sets alike...
        assert {k: local.get(k) for k in shared} == shared, name
        # ...and everything the launcher sets beyond placement and sizing, compose sets too.
        assert set(local) - PLACEMENT - set(LOCAL_SETTINGS) <= set(compose), name
        assert set(compose) >= PLACEMENT, name
    assert set(CLUSTER_SETTINGS) <= set(local)


def test_the_cluster_settings_promise_acks_all_survives_one_broker_down() -> None:
    local = launched()
    assert local["auto.create.topics.enable"] == "false"
    assert int(local["default.replication.factor"]) - int(local["min.insync.replicas"]) == 1
    assert local["offsets.topic.replication.factor"] == "3"


def test_a_smaller_cluster_scales_its_replication_down() -> None:
    one = settings_for(1)
    assert one["default.replication.factor"] == one["offsets.topic.replication.factor"] == "1"
    assert one["min.insync.replicas"] == "1"
    assert settings_for(3) == CLUSTER_SETTINGS
