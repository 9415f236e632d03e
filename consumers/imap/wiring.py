"""Builds the imap executor from Settings: the mail stores on the database, the IMAP limits."""

from __future__ import annotations

from consumers.imap.executor import ImapExecutor, ImapSettings
from consumers.mail.accounts import AccountStore
from consumers.mail.address_policy import allowed_hosts
from consumers.mail.database import mail_engine
from consumers.mail.message_store import MessageStore
from consumers.mail.password_box import PasswordBox
from core.settings import Settings


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
    return ImapExecutor(AccountStore(engine, box), MessageStore(engine), imap_settings(settings))
