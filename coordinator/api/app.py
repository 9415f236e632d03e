"""The FastAPI application; adapters are wired in the lifespan, never at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from coordinator.api.errors import install_error_handlers
from coordinator.api.routes import router
from coordinator.bootstrap import bootstrap
from coordinator.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    """An app bound to these settings."""
    if not settings.jwt_secret.get_secret_value():
        raise SystemExit("SYNC_JWT_SECRET is not set: the API cannot verify tokens")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.wiring = bootstrap(settings)
        try:
            yield
        finally:
            app.state.wiring.close()

    app = FastAPI(
        title="Sync coordinator",
        description="Starts at most one mail sync per user; joins the live one.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.include_router(router)
    install_error_handlers(app, settings.retry_after_seconds)
    return app
