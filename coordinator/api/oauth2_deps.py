"""What the OAuth2 connect routes need: the configured providers' clients, built once at app
creation, and the store of connects in progress."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request

from consumers.mail.oauth2_client import OAuth2Client
from consumers.mail.oauth2_flows import FlowStore
from consumers.mail.oauth2_providers import configured_providers
from consumers.mail.password_box import PasswordBox
from coordinator.bootstrap import Wiring
from core.settings import Settings


@dataclass
class OAuth2Setup:
    clients: dict[str, OAuth2Client]
    public_url: str | None
    return_url: str
    flows: FlowStore | None = field(default=None)


def install(app: FastAPI, settings: Settings) -> None:
    timeout = settings.oauth2_http_timeout_seconds
    app.state.oauth2 = OAuth2Setup(
        clients={
            name: OAuth2Client(provider, timeout)
            for name, provider in configured_providers(settings).items()
        },
        public_url=settings.public_url.rstrip("/") if settings.public_url else None,
        return_url=settings.oauth2_return_url,
    )


async def get_oauth2(request: Request) -> OAuth2Setup:
    """The setup with its flow store; 503 without SYNC_MAIL_KEY (nothing could be sealed)."""
    setup: OAuth2Setup = request.app.state.oauth2
    if setup.flows is None:
        box: PasswordBox | None = request.app.state.mail_box
        if box is None:
            raise HTTPException(503, "mail accounts are not configured here (no SYNC_MAIL_KEY)")
        wiring: Wiring = request.app.state.wiring
        setup.flows = FlowStore(wiring.engine, box)
    return setup


OAuth2Dep = Annotated[OAuth2Setup, Depends(get_oauth2)]
