"""The mail stores for request handlers, and the bounded place where account checks run.

The password box is built when the app is created, so a malformed SYNC_MAIL_KEY stops the API
at start with the reason instead of failing inside a request.
"""

from __future__ import annotations

import ssl
from typing import Annotated

import anyio
from fastapi import Depends, FastAPI, HTTPException, Request

from consumers.mail.accounts import AccountStore
from consumers.mail.address_policy import allowed_hosts
from consumers.mail.message_store import MessageStore
from consumers.mail.password_box import PasswordBox
from consumers.mail.tls_policy import client_context
from coordinator.bootstrap import Wiring
from core.settings import Settings

CHECKS_AT_ONCE = 4  # account checks (DNS, login) in flight across all users, each time-bounded


class AccountChecks:
    """A small thread limiter of its own, so checks never take the shared pool's threads, and at
    most one check per user at a time."""

    def __init__(self, allowed: frozenset[str], tls: ssl.SSLContext) -> None:
        self.allowed_hosts = allowed
        self.tls = tls  # verifies the servers' certificates (SYNC_MAIL_CA_BUNDLE)
        self.running: set[str] = set()
        self._limiter: anyio.CapacityLimiter | None = None

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        if self._limiter is None:  # made inside the event loop, on first use
            self._limiter = anyio.CapacityLimiter(CHECKS_AT_ONCE)
        return self._limiter


def install(app: FastAPI, settings: Settings) -> None:
    """Opens SYNC_MAIL_KEY and SYNC_MAIL_CA_BUNDLE now (SystemExit with the reason if bad)."""
    key = settings.mail_key.get_secret_value()
    app.state.mail_box = PasswordBox(key) if key else None
    try:
        tls = client_context(settings.mail_ca_bundle)
    except ValueError as error:
        raise SystemExit(str(error)) from None
    app.state.mail_checks = AccountChecks(allowed_hosts(settings.mail_allowed_hosts), tls)


async def get_accounts(request: Request) -> AccountStore:
    """The account store; 503 when no SYNC_MAIL_KEY is configured to seal passwords."""
    state = request.app.state
    if getattr(state, "mail_accounts", None) is None:
        box: PasswordBox | None = state.mail_box
        if box is None:
            raise HTTPException(503, "mail accounts are not configured here (no SYNC_MAIL_KEY)")
        wiring: Wiring = state.wiring
        state.mail_accounts = AccountStore(wiring.engine, box)
    accounts: AccountStore = state.mail_accounts
    return accounts


async def get_checks(request: Request) -> AccountChecks:
    checks: AccountChecks = request.app.state.mail_checks
    return checks


async def get_messages(request: Request) -> MessageStore:
    state = request.app.state
    if getattr(state, "mail_messages", None) is None:
        wiring: Wiring = state.wiring
        state.mail_messages = MessageStore(wiring.engine)
    messages: MessageStore = state.mail_messages
    return messages


AccountsDep = Annotated[AccountStore, Depends(get_accounts)]
ChecksDep = Annotated[AccountChecks, Depends(get_checks)]
MessagesDep = Annotated[MessageStore, Depends(get_messages)]
