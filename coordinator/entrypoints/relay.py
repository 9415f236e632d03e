"""`syncctl relay`: publish the outbox to Kafka, one leader at a time."""

from __future__ import annotations

from coordinator.entrypoints import Commands
from core.settings import Settings


def add_parser(commands: Commands) -> None:
    parser = commands.add_parser("relay", help="publish the outbox to Kafka (one leader at a time)")
    parser.set_defaults(run=lambda settings, args: run(settings), service="sync-relay")


def run(settings: Settings) -> int:
    """Relay until SIGTERM or SIGINT."""
    from coordinator.adapters.postgres.outbox_store import OutboxStore, RelayLeadership
    from coordinator.relay.outbox_relay import OutboxRelay, RelayConfig
    from core.database import make_engine
    from core.stopping import stop_on_signals

    url = settings.require_database_url()
    stop = stop_on_signals()
    engine = make_engine(url, pool_size=2)
    config = RelayConfig(
        bootstrap=settings.require_kafka_bootstrap(),
        topic=settings.kafka_topic,
        partitions=settings.kafka_partitions,
        batch_size=settings.relay_batch_size,
        poll_seconds=settings.relay_poll_seconds,
        max_backoff_seconds=settings.relay_max_backoff_seconds,
        standby_seconds=settings.relay_standby_seconds,
        exit_after_publish=settings.relay_exit_after_publish,
        max_message_bytes=settings.kafka_max_message_bytes,
        read_topic_limit=settings.kafka_read_topic_limit,
        replication_factor=settings.kafka_replication_factor,
        min_insync_replicas=settings.kafka_min_insync_replicas,
        delivery_timeout_seconds=settings.kafka_delivery_timeout_ms / 1000,
    )
    OutboxRelay(config, OutboxStore(engine), RelayLeadership(url), stop).run()
    engine.dispose()
    return 0
