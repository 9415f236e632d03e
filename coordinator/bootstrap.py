"""Composition root: builds adapters from Settings; called by the API lifespan and the CLI."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine, text

from coordinator.adapters.postgres.async_event_store import AsyncPostgresEventStore
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
    command_store: AsyncPostgresEventStore  # the coalescer's; connects on first use

    def ping_database(self) -> None:
        """Raise StoreUnavailable unless the database answers."""
        with translated_errors(), self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    async def close_commands(self) -> None:
        """Close the coalescer's connections, on the loop that made them (the API's)."""
        await self.command_store.close()

    def close(self) -> None:
        self.coalescer.close()
        self.engine.dispose()


def bootstrap(
    settings: Settings,
    on_conflict: Callable[[], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> Wiring:
    """Wire the event store, views and handler dependencies; connects lazily, on first use."""
    url = settings.require_database_url()
    engine = make_engine(url, settings.db_pool_size)
    store = PostgresEventStore(engine, settings.lock_timeout_ms, settings.max_event_bytes)
    command_store = AsyncPostgresEventStore(
        libpq_url(url),
        settings.transactions_in_flight(),
        settings.lock_timeout_ms,
        settings.max_event_bytes,
    )
    deps = Dependencies(
        store=store,
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
            store=command_store,
        ),
        command_store=command_store,
    )
