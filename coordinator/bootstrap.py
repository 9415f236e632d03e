"""Composition root: builds adapters from Settings, for the API lifespan and the syncctl
commands (the command path, the read models, and the mail stores of the worker and watcher)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine, text

from consumers.mail.access_tokens import AccessTokens
from consumers.mail.accounts import AccountStore
from consumers.mail.message_store import MessageStore
from consumers.mail.oauth2_client import OAuth2Client
from consumers.mail.oauth2_providers import configured_providers
from consumers.mail.password_box import PasswordBox
from coordinator.adapters.postgres.event_store import PostgresEventStore
from coordinator.adapters.postgres.outbox_store import OutboxStore
from coordinator.service.coalescer import CoalescerLimits, CommandCoalescer
from coordinator.service.handlers import Dependencies
from core.database import libpq_url, make_engine, translated_errors
from core.settings import Settings
from projections.read_models import ReadModels


@dataclass
class Wiring:
    """Everything a process needs, built once and closed on shutdown."""

    engine: Engine
    deps: Dependencies
    read_models: ReadModels
    outbox: OutboxStore
    coalescer: CommandCoalescer
    command_store: PostgresEventStore  # the handlers'; connects on first use, on the loop

    def ping_database(self) -> None:
        """Raise StoreUnavailable unless the database answers."""
        with translated_errors(), self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    async def close_commands(self) -> None:
        """Close the command path's connections, on the loop that made them."""
        await self.command_store.close()

    def close(self) -> None:
        self.engine.dispose()


def bootstrap(
    settings: Settings,
    on_conflict: Callable[[], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> Wiring:
    """Wire the event store, views and handler dependencies; connects lazily, on first use."""
    url = settings.require_database_url()
    engine = make_engine(url, settings.db_pool_size)
    command_store = PostgresEventStore(
        libpq_url(url),
        settings.transactions_in_flight(),
        settings.lock_timeout_ms,
        settings.max_event_bytes,
    )
    deps = Dependencies(
        store=command_store,
        lease=timedelta(seconds=settings.reuse_window_seconds),
        conflict_retries=settings.conflict_retries,
        on_conflict=on_conflict or (lambda: None),
    )
    return Wiring(
        engine=engine,
        deps=deps,
        read_models=ReadModels(engine),
        outbox=OutboxStore(engine),
        coalescer=CommandCoalescer(
            deps,
            CoalescerLimits(
                waiting_per_user=settings.command_queue_limit,
                transactions_in_flight=settings.transactions_in_flight(),
                batch_size=settings.command_batch_max,
                retry_after_seconds=settings.retry_after_seconds,
            ),
            on_batch=on_batch or (lambda size: None),
        ),
        command_store=command_store,
    )


@dataclass
class MailWiring:
    """The mail stores of a process that reads users' accounts (the worker, the watcher)."""

    engine: Engine
    accounts: AccountStore
    messages: MessageStore
    tokens: AccessTokens  # OAuth2 access tokens, refreshed under the grant's lock

    def close(self) -> None:
        self.engine.dispose()


def mail_wiring(settings: Settings, pool_size: int) -> MailWiring:
    """The mail stores on their own engine of `pool_size` connections; exits with the reason
    when SYNC_DATABASE_URL or SYNC_MAIL_KEY is missing."""
    engine = make_engine(settings.require_database_url(), pool_size=pool_size)
    box = PasswordBox(settings.require_mail_key())
    clients = {
        name: OAuth2Client(provider, settings.oauth2_http_timeout_seconds)
        for name, provider in configured_providers(settings).items()
    }
    return MailWiring(
        engine=engine,
        accounts=AccountStore(engine, box),
        messages=MessageStore(engine),
        tokens=AccessTokens(engine, box, clients, settings.public_url or ""),
    )
