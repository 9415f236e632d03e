"""`syncctl reap`: expires tasks whose lease ran out, through the aggregate under its lock."""

from __future__ import annotations

import asyncio
import logging

from coordinator.bootstrap import bootstrap
from coordinator.entrypoints import Commands
from coordinator.service.handlers import Dependencies, TaskOutcome, handle
from coordinator.service.ports import EventStore
from core.domain.commands import ExpireStaleSync, RequestMeta
from core.settings import Settings
from core.stopping import stop_on_signals
from core.store_errors import StoreUnavailable
from core.telemetry import tracing
from core.telemetry.logs import log_context

log = logging.getLogger("coordinator.entrypoints.reap")
BATCH = 500


async def reap_once(store: EventStore, deps: Dependencies) -> int:
    """Expire every lapsed task found now; returns how many were expired."""
    expired = 0
    while True:
        users = await store.users_with_lapsed_leases(BATCH)
        for user_id in users:
            # The aggregate re-checks under the lock: a task that renewed its lease
            # since the query is left alone.
            with (
                tracing.span_under("reaper expire", None, {"sync.user_id": user_id}) as span,
                log_context(user_id=user_id),
            ):
                traceparent = None if span is None else tracing.traceparent_of(span)
                meta = RequestMeta(correlation_id="reaper", traceparent=traceparent)
                outcome = await handle(ExpireStaleSync(user_id=user_id, meta=meta), deps)
                assert isinstance(outcome, TaskOutcome)
                if outcome.status == "expired":
                    expired += 1
                    with log_context(task_id=outcome.task_id):
                        log.info("expired task %s of %s", outcome.task_id, user_id)
        if len(users) < BATCH:
            return expired


def add_parser(commands: Commands) -> None:
    parser = commands.add_parser("reap", help="expire tasks whose lease ran out, periodically")
    parser.set_defaults(run=lambda settings, args: run(settings), service="sync-reaper")


def run(settings: Settings) -> int:
    """Reap every `SYNC_REAPER_INTERVAL_SECONDS` until SIGTERM or SIGINT."""
    stop = stop_on_signals()
    wiring = bootstrap(settings)
    log.info("reaper running every %.1fs", settings.reaper_interval_seconds)

    async def reap_until_stopped() -> None:
        try:
            while not stop.is_set():
                try:
                    count = await reap_once(wiring.deps.store, wiring.deps)
                    if count:
                        log.info("expired %d tasks whose lease ran out", count)
                except StoreUnavailable as error:
                    log.warning("database unavailable (%s); will retry", error)
                await asyncio.to_thread(stop.wait, settings.reaper_interval_seconds)
        finally:
            await wiring.close_commands()

    asyncio.run(reap_until_stopped())
    wiring.close()
    return 0
