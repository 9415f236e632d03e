"""The FastAPI application; adapters are wired in the lifespan, never at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from coordinator.api import ops_routes, read_routes, report_routes, start_routes
from coordinator.api.errors import install_error_handlers
from coordinator.api.metrics import CommandMetrics, StoredStateCollector
from coordinator.bootstrap import bootstrap
from coordinator.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    """An app bound to these settings."""
    if not settings.jwt_secret.get_secret_value():
        raise SystemExit("SYNC_JWT_SECRET is not set: the API cannot verify tokens")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        registry = CollectorRegistry()
        metrics = CommandMetrics(registry)
        wiring = bootstrap(settings, on_conflict=metrics.conflicts.inc)
        registry.register(StoredStateCollector(wiring.outbox, wiring.read_models))
        app.state.settings, app.state.wiring = settings, wiring
        app.state.metrics, app.state.registry = metrics, registry
        try:
            yield
        finally:
            wiring.close()

    app = FastAPI(
        title="Sync coordinator",
        description="Starts at most one mail sync per user; joins the live one.",
        version="0.1.0",
        lifespan=lifespan,
    )
    for module in (start_routes, report_routes, read_routes, ops_routes):
        app.include_router(module.router)
    install_error_handlers(app, settings.retry_after_seconds)
    return app
