"""The FastAPI application; adapters are wired in the lifespan, never at import."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from coordinator.api import mail_deps, oauth2_deps
from coordinator.api.admission.crowd import CrowdMark
from coordinator.api.admission.request_guard import RequestGuard, ResponseHeaders
from coordinator.api.admission.user_gate import UserGate, UserLines
from coordinator.api.auth.tokens import TokenVerifier
from coordinator.api.metrics import (
    CommandMetrics,
    StoredStateCollector,
    forget_dead_workers,
    metrics_folder,
)
from coordinator.api.problems.handlers import install_error_handlers
from coordinator.api.problems.openapi import install_openapi
from coordinator.api.request_log import RequestLog
from coordinator.api.routes import (
    accounts,
    cancel,
    docs,
    mail,
    mail_changes,
    oauth2,
    ops,
    page,
    reads,
    reports,
    skipped,
    start,
    stream,
)
from coordinator.api.start_shortcut import StartShortcut
from coordinator.api.status_hub import StatusHub
from coordinator.api.stop_signals import on_stop_signal
from coordinator.bootstrap import bootstrap
from core.settings import Settings
from projections.status_listener import StatusListener

REPORT_PATH = re.compile(r"/sync/tasks/[^/]+/(progress|complete|fail)")
ACCOUNT_PATH = "/accounts/imap"
STREAM_PATH = "/sync/status/stream"
ACCOUNT_BODY_BYTES = 32 * 1024  # host, login, password and up to 100 folder names


def create_app(settings: Settings) -> FastAPI:
    """An app bound to these settings; exits when tokens could not be verified safely."""
    tokens = TokenVerifier.from_settings(settings)
    lines = UserLines()
    hub = StatusHub(settings.stream_max_per_user)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        folder = metrics_folder()
        if folder:
            forget_dead_workers(folder)
        registry = CollectorRegistry()
        metrics = CommandMetrics(registry, shared=folder is not None)
        wiring = bootstrap(
            settings, on_conflict=metrics.conflicts.inc, on_batch=metrics.batch_sizes.observe
        )
        scraped = shared_registry(folder) if folder else registry
        scraped.register(StoredStateCollector(wiring.outbox, wiring.read_models))
        app.state.settings, app.state.wiring = settings, wiring
        app.state.metrics, app.state.registry = metrics, scraped
        depth = asyncio.create_task(
            metrics.watch_queues(lambda: wiring.coalescer.waiting, lambda: lines.held)
        )
        lines.on_refused = metrics.turned_away.inc
        hub.bind(asyncio.get_running_loop(), wiring.read_models.statuses)
        listener = StatusListener(settings.require_database_url(), hub.changed)
        listener.start()
        undo_signals = on_stop_signal(hub.close_soon)  # open streams must not delay a stop
        # What is built by now lives as long as the process. A full collection walked it all
        # (about 55 ms, every request of the process stopped): the tail of a busy API.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            undo_signals()
            hub.close()
            listener.stop()
            depth.cancel()
            await wiring.close_commands()
            wiring.close()
            if folder:
                mark_process_dead(os.getpid(), folder)  # type: ignore[no-untyped-call]

    app = FastAPI(
        title="Sync coordinator",
        description="Starts at most one mail sync per user; joins the live one. "
        "Every error is an RFC 9457 problem document (application/problem+json).",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # routes/docs.py serves /docs from packaged files; no CDN, no ReDoc
        redoc_url=None,
    )
    app.state.tokens, app.state.status_hub = tokens, hub
    routes = (start, cancel, reports, stream, reads, ops)
    for module in routes:
        app.include_router(module.router)
    page.install(app)
    docs.install(app)
    mail_deps.install(app, settings)
    oauth2_deps.install(app, settings)
    for module in (accounts, oauth2, mail, mail_changes, skipped):
        app.include_router(module.router)
    install_error_handlers(app, settings.retry_after_seconds)
    install_openapi(app)
    # Inside RequestGuard and UserGate: a plain click is answered before the router.
    app.add_middleware(
        StartShortcut, tokens=tokens, retry_after_seconds=settings.retry_after_seconds
    )
    app.add_middleware(
        RequestGuard,
        body_limit=body_limits(settings),
        body_seconds=settings.request_body_seconds,
    )
    if settings.user_active_requests:
        app.add_middleware(
            UserGate,
            lines=lines,
            known_user=tokens.admission_user,
            active=settings.user_active_requests,
            alone=settings.user_active_requests_alone,
            crowd=CrowdMark.from_environment(),
            per_second=settings.user_requests_per_second,
            waiting=settings.command_queue_limit,
            retry_after=settings.retry_after_seconds,
            # An open status stream idles for minutes; it has its own bound per user.
            exempt_paths=frozenset({STREAM_PATH}),
        )
    app.add_middleware(RequestLog)  # outside the gate: its 429s are logged too
    logging.getLogger("coordinator.api.requests").setLevel(settings.request_log_level)
    app.add_middleware(ResponseHeaders)  # outermost: the gate's 429s get them too
    return app


def body_limits(settings: Settings) -> Callable[[str], int]:
    """Bytes of body each path may receive: reports carry stats, nothing else has a body."""

    def limit(path: str) -> int:
        if REPORT_PATH.fullmatch(path):
            return settings.max_report_body_bytes
        if path == ACCOUNT_PATH:
            return ACCOUNT_BODY_BYTES
        return settings.max_body_bytes

    return limit


def shared_registry(folder: str) -> CollectorRegistry:
    """What /metrics shows as one of several workers: the sum over all of them."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, folder)  # type: ignore[no-untyped-call]
    return registry
