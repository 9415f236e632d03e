"""The mail stores for request handlers, built once per app on first use."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from coordinator.bootstrap import Wiring
from coordinator.settings import Settings
from mail.accounts import AccountStore
from mail.message_store import MessageStore
from mail.password_box import PasswordBox


async def get_accounts(request: Request) -> AccountStore:
    """The account store; 503 when no SYNC_MAIL_KEY is configured to seal passwords."""
    state = request.app.state
    if getattr(state, "mail_accounts", None) is None:
        settings: Settings = state.settings
        key = settings.mail_key.get_secret_value()
        if not key:
            raise HTTPException(503, "mail accounts are not configured here (no SYNC_MAIL_KEY)")
        wiring: Wiring = state.wiring
        state.mail_accounts = AccountStore(wiring.engine, PasswordBox(key))
    accounts: AccountStore = state.mail_accounts
    return accounts


async def get_messages(request: Request) -> MessageStore:
    state = request.app.state
    if getattr(state, "mail_messages", None) is None:
        wiring: Wiring = state.wiring
        state.mail_messages = MessageStore(wiring.engine)
    messages: MessageStore = state.mail_messages
    return messages


AccountsDep = Annotated[AccountStore, Depends(get_accounts)]
MessagesDep = Annotated[MessageStore, Depends(get_messages)]
