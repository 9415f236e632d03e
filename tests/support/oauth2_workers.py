"""Worker processes asking for an OAuth2 account's access token, for the concurrency test.

A module of its own with few imports, so a spawned process starts in little time."""

from __future__ import annotations

from typing import Any

from consumers.mail.access_tokens import AccessTokens
from consumers.mail.oauth2_client import OAuth2Client
from consumers.mail.oauth2_providers import configured_providers
from consumers.mail.password_box import PasswordBox
from core.database import make_engine
from core.settings import Settings

GATE: Any = None  # in each worker process: the barrier every party passes before asking


def access_tokens(settings: Settings) -> AccessTokens:
    """What one worker process holds: its own pool, its own clients."""
    engine = make_engine(settings.require_database_url(), pool_size=2)
    clients = {
        name: OAuth2Client(p, settings.oauth2_http_timeout_seconds)
        for name, p in configured_providers(settings).items()
    }
    return AccessTokens(engine, PasswordBox(settings.require_mail_key()), clients)


def keep_gate(gate: Any) -> None:
    global GATE
    GATE = gate


def ask_together(settings: Settings, user: str) -> str:
    """Ready a pool and clients, pass the gate with the others, ask for the token."""
    tokens = access_tokens(settings)
    GATE.wait(60)
    return tokens.current(user)
