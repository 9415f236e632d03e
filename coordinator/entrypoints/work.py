"""`syncctl work`: the sync worker, running the configured executor for each SyncStarted."""

from __future__ import annotations

import logging
import time

from consumers.executors import Executor
from coordinator.entrypoints import Commands
from core.settings import Settings

log = logging.getLogger("consumers.sync_worker")


def add_parser(commands: Commands) -> None:
    parser = commands.add_parser("work", help="run syncs for SyncStarted events (sync worker)")
    parser.set_defaults(run=lambda settings, args: run(settings), service="sync-worker")


def run(settings: Settings) -> int:
    """Consume the worker's group until SIGTERM/SIGINT, then shut down gracefully."""
    import jwt

    from consumers.coordinator_client import CoordinatorClient
    from consumers.sync_worker import SyncWorker
    from core.kafka.event_source import EventSource, SourceConfig
    from core.report_scope import REPORT_SCOPE
    from core.stopping import stop_on_signals

    stop = stop_on_signals()
    secret = settings.require_jwt_secret()  # the worker signs its own HS256 report tokens

    def token_for(user_id: str) -> str:
        now = int(time.time())
        claims = {"sub": user_id, "scope": REPORT_SCOPE, "iat": now, "exp": now + 300}
        return jwt.encode(claims, secret, "HS256")

    client = CoordinatorClient(settings.api_url, token_for)
    executor = make_executor(settings)
    worker = SyncWorker(
        executor, client, settings.worker_concurrency, settings.worker_grace_seconds
    )
    source = EventSource(
        SourceConfig(
            bootstrap=settings.require_kafka_bootstrap(),
            topic=settings.kafka_topic,
            group=settings.worker_group,
            max_poll_interval_ms=settings.consumer_max_poll_interval_ms,
            instance_id=settings.consumer_instance_id,
        )
    )
    log.info("worker consuming %s as %s", settings.kafka_topic, settings.worker_group)
    try:
        while not stop.is_set():
            batch = source.poll(timeout_ms=500)
            worker.take(batch)
            source.commit(batch)  # a task lost with this process is reaped after its lease
            worker.forget_finished()
    finally:
        worker.shutdown()
        source.close()
        client.close()
    return 0


def make_executor(settings: Settings) -> Executor:
    """The executor named in settings."""
    from consumers.executors import DemoExecutor

    if settings.worker_executor == "demo":
        return DemoExecutor(settings.demo_messages, settings.demo_pace)
    if settings.worker_executor == "imap":
        return imap_executor(settings)
    raise SystemExit(f"unknown executor {settings.worker_executor!r}; known: demo, imap")


def imap_executor(settings: Settings) -> Executor:
    """One engine shared by the worker's sync threads (a connection each at most)."""
    from consumers.imap.executor import ImapExecutor, ImapSettings
    from consumers.mail.address_policy import allowed_hosts
    from consumers.mail.connection_slots import ConnectionSlots, SlotLimits, slots_engine
    from coordinator.bootstrap import mail_wiring

    mail = mail_wiring(settings, pool_size=settings.worker_concurrency)
    limits = ImapSettings(
        batch_size=settings.mail_batch_size,
        raw_max_bytes=settings.mail_raw_max_bytes,
        connect_attempts=settings.mail_connect_attempts,
        timeout_seconds=settings.mail_timeout_seconds,
        report_every_seconds=settings.mail_report_every_seconds,
        allowed_hosts=allowed_hosts(settings.mail_allowed_hosts),
        ca_bundle=settings.mail_ca_bundle,
        flag_walk_seconds=settings.mail_flag_walk_seconds,
        extensions_off=frozenset(
            e.strip().upper() for e in settings.mail_extensions_off.split(",") if e.strip()
        ),
        changes_retention_seconds=settings.mail_changes_retention_seconds,
        max_backoff_seconds=settings.mail_max_backoff_seconds,
        backoff_reset_seconds=settings.mail_backoff_reset_seconds,
        throttle_max_wait_seconds=settings.mail_throttle_max_wait_seconds,
    )
    slots = ConnectionSlots(  # IMAP connections per account and host, across all workers
        slots_engine(settings.require_database_url()),
        SlotLimits(
            per_account=settings.mail_max_connections_per_account,
            per_host=settings.mail_max_connections_per_host,
            wait_seconds=settings.mail_slot_wait_seconds,
        ),
    )
    return ImapExecutor(mail.accounts, mail.messages, limits, mail.tokens, slots)
