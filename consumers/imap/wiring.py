"""Builds the imap executor from Settings: the mail stores on the database, the IMAP limits."""

from __future__ import annotations

from consumers.imap.executor import ImapExecutor, ImapSettings
from coordinator.settings import Settings
from mail.access_tokens import AccessTokens
from mail.accounts import AccountStore
from mail.address_policy import allowed_hosts
from mail.database import mail_engine
from mail.message_store import MessageStore
from mail.oauth2_client import OAuth2Client
from mail.oauth2_providers import configured_providers
from mail.password_box import PasswordBox


def imap_settings(settings: Settings) -> ImapSettings:
    return ImapSettings(
        batch_size=settings.mail_batch_size,
        raw_max_bytes=settings.mail_raw_max_bytes,
        connect_attempts=settings.mail_connect_attempts,
        timeout_seconds=settings.mail_timeout_seconds,
        report_every_seconds=settings.mail_report_every_seconds,
        allowed_hosts=allowed_hosts(settings.mail_allowed_hosts),
    )


def imap_executor(settings: Settings) -> ImapExecutor:
    """One engine shared by the worker's sync threads (a connection each at most)."""
    engine = mail_engine(settings.require_database_url(), pool_size=settings.worker_concurrency)
    box = PasswordBox(settings.require_mail_key())
    clients = {
        name: OAuth2Client(provider, settings.oauth2_http_timeout_seconds)
        for name, provider in configured_providers(settings).items()
    }
    tokens = AccessTokens(engine, box, clients, settings.public_url or "")
    return ImapExecutor(
        AccountStore(engine, box), MessageStore(engine), imap_settings(settings), tokens
    )
