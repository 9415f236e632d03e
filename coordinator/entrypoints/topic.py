"""`syncctl topic`: create the event topic before anything uses it."""

from __future__ import annotations

import sys

from coordinator.entrypoints import Commands
from core.settings import Settings


def add_parser(commands: Commands) -> None:
    parser = commands.add_parser(
        "topic", help="create the event topic (SYNC_KAFKA_PARTITIONS, _REPLICATION_FACTOR)"
    )
    parser.add_argument("--wait", type=float, default=0, help="seconds to retry a broker")
    parser.set_defaults(run=lambda settings, args: run(settings, args.wait))


def run(settings: Settings, wait_seconds: float = 0) -> int:
    """Create the topic; retry a broker that is still starting for `wait_seconds`."""
    from coordinator.adapters.kafka.publisher import PublishFailed
    from coordinator.adapters.kafka.topic import ensure_topic_waiting

    topic = settings.kafka_topic
    try:
        layout = ensure_topic_waiting(
            settings.require_kafka_bootstrap(),
            topic,
            settings.kafka_partitions,
            settings.kafka_replication_factor,
            settings.kafka_min_insync_replicas,
            wait_seconds,
        )
    except PublishFailed as error:
        print(f"syncctl topic: {error}", file=sys.stderr)
        return 1
    print(f"topic {topic}: {layout.partitions} partitions, {layout.replication_factor} replicas")
    return 0
