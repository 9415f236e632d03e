"""The `imap` executor: every folder of the user's account, progress at a bounded rate."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from consumers.executors import Report, Stopped, TaskFailed, TaskSpec
from consumers.imap import folder_sync
from consumers.imap import server_commands as imap
from consumers.imap.attempts import RetryLimits, with_attempts
from consumers.imap.folder_state import State
from consumers.imap.mailbox_login import MailboxLogin
from consumers.imap.sync_plan import plan_folders
from consumers.mail.access_tokens import AccessTokens
from consumers.mail.accounts import AccountStore, ImapAccount
from consumers.mail.backoff import Backoff
from consumers.mail.connection_slots import ConnectionSlots
from consumers.mail.database import MailStoreUnavailable
from consumers.mail.imap_connection import MailProblem, close, connect
from consumers.mail.message_store import FolderMoved, MessageStore, Owner
from consumers.mail.password_box import UnreadablePassword
from consumers.mail.throttling import throttled
from consumers.mail.tls_policy import client_context

log = logging.getLogger("consumers.imap")


@dataclass(frozen=True)
class ImapSettings:
    batch_size: int = 200
    raw_max_bytes: int = 1024 * 1024
    connect_attempts: int = 3
    timeout_seconds: float = 30.0
    report_every_seconds: float = 1.0
    first_backoff_seconds: float = 0.5
    allowed_hosts: frozenset[str] = frozenset()  # SYNC_MAIL_ALLOWED_HOSTS (address_policy.py)
    ca_bundle: str = ""  # SYNC_MAIL_CA_BUNDLE (tls_policy.py); empty: the system's roots
    flag_walk_seconds: float = 1800.0
    extensions_off: frozenset[str] = frozenset()  # upper case: QRESYNC, CONDSTORE, ESEARCH
    changes_retention_seconds: float = 7 * 86400.0
    max_backoff_seconds: float = 60.0
    backoff_reset_seconds: float = 60.0
    throttle_max_wait_seconds: float = 300.0

    @property
    def retry(self) -> RetryLimits:
        return RetryLimits(
            attempts=self.connect_attempts,
            first_backoff_seconds=self.first_backoff_seconds,
            max_backoff_seconds=self.max_backoff_seconds,
            backoff_reset_seconds=self.backoff_reset_seconds,
            throttle_max_wait_seconds=self.throttle_max_wait_seconds,
        )


class ImapExecutor:
    """Syncs the task's user's IMAP account into the message store."""

    def __init__(
        self,
        accounts: AccountStore,
        messages: MessageStore,
        settings: ImapSettings,
        tokens: AccessTokens | None = None,
        slots: ConnectionSlots | None = None,
    ) -> None:
        self._accounts = accounts
        self._messages = messages
        self._settings = settings
        self._tls = client_context(settings.ca_bundle)  # a bad bundle stops the worker at start
        self._login = MailboxLogin(self._connect, tokens)
        self._slots = slots  # connections per account and host across workers; None: no cap

    def run(self, task: TaskSpec, report: Report, stopping: threading.Event) -> dict[str, Any]:
        try:
            account = self._accounts.load(task.user_id)
        except (UnreadablePassword, MailStoreUnavailable) as error:
            raise TaskFailed(str(error)) from None
        if account is None:
            raise TaskFailed("no IMAP account is registered for this user (PUT /accounts/imap)")
        slot = (
            self._slots.held(account.host, account.username, stopping)
            if self._slots is not None
            else contextlib.nullcontext()
        )
        try:
            with slot:
                return with_attempts(
                    lambda backoff: self._attempt(account, task, report, stopping, backoff),
                    self._settings.retry,
                    account.address(),
                    stopping,
                )
        except (MailProblem, UnreadablePassword) as error:
            raise TaskFailed(str(error)) from None
        except FolderMoved as error:
            raise TaskFailed(f"{error}; this sync stops") from None
        except MailStoreUnavailable as error:
            raise TaskFailed(
                f"{error}; the next sync resumes from the last committed batch"
            ) from None

    def _attempt(
        self,
        account: ImapAccount,
        task: TaskSpec,
        report: Report,
        stopping: threading.Event,
        backoff: Backoff,
    ) -> dict[str, Any]:
        """One connection: log in (an OAuth2 account with a current token), sync, close."""
        client = self._login(account, task.user_id)
        backoff.opened()
        try:
            return self._sync(client, account, task, report, stopping)
        except (MailProblem, IMAPClientError) as error:
            # A command answered `NO [THROTTLED] ...` reads as any other failure of it.
            raise throttled(str(error), account.address()) or error from None
        finally:
            close(client)
            backoff.closed()

    def _connect(self, account: ImapAccount) -> IMAPClient:
        s = self._settings
        return connect(
            account,
            allowed_hosts=s.allowed_hosts,
            attempts=s.connect_attempts,
            timeout=s.timeout_seconds,
            first_backoff=s.first_backoff_seconds,
            max_backoff=s.max_backoff_seconds,
            tls=self._tls,
        )

    def _sync(
        self,
        client: IMAPClient,
        account: ImapAccount,
        task: TaskSpec,
        report: Report,
        stopping: threading.Event,
    ) -> dict[str, Any]:
        started = time.monotonic()
        s, store, user = self._settings, self._messages, task.user_id
        mode = imap.server_mode(client, s.extensions_off)
        plans = plan_folders(
            client,
            store,
            user,
            account,
            mode,
            full=task.sync_type == "full",
            walk_seconds=s.flag_walk_seconds,
            turned_off=s.extensions_off,
            check_stop=lambda doing: _check_stop(stopping, doing),
        )
        progress = _Progress(report, sum(p[3].estimate for p in plans), stopping, s)
        progress.report_now()
        session = folder_sync.Session(
            client,
            store,
            user,
            Owner(account.host, account.port, account.username),
            mode,
            imap.offered(client, "ESEARCH", s.extensions_off),
            s.batch_size,
            s.raw_max_bytes,
            check_stop=lambda doing: _check_stop(stopping, doing),
            after_batch=progress.advance,
            correct_total=progress.correct,
        )
        outcomes = [folder_sync.sync_folder(session, *plan) for plan in plans]
        unchanged = [p[0] for p in plans if p[3].state is State.UNCHANGED]
        store.finish_sync(user, unchanged, s.changes_retention_seconds)
        return {
            "folders": len(plans),
            "fetched": sum(o.fetched for o in outcomes),
            "total": progress.total,
            "flags_updated": sum(o.flags_updated for o in outcomes),
            "removed": sum(o.removed for o in outcomes),
            "skipped": sum(o.skipped for o in outcomes),
            "started_over": sum(1 for o in outcomes if o.started_over),
            "rekeyed": sum(1 for o in outcomes if o.rekeyed),
            "unchanged": sum(1 for p in plans if p[3].state is State.UNCHANGED),
            "mode": mode.value,
            "seconds": round(time.monotonic() - started, 3),
        }


class _Progress:
    """Messages done of messages to do, reported at most once per period (renews the lease)."""

    def __init__(
        self, report: Report, total: int, stopping: threading.Event, settings: ImapSettings
    ) -> None:
        self._report = report
        self.total = total
        self.done = 0
        self._stopping = stopping
        self._every = settings.report_every_seconds
        self._last = time.monotonic()

    def advance(self, count: int) -> None:
        self.done += count
        if self._stopping.is_set():
            raise Stopped(
                f"stopped after {self.done} of {self.total} messages; the next sync resumes "
                "from the last committed batch"
            )
        if time.monotonic() - self._last >= self._every:
            self.report_now()

    def correct(self, delta: int) -> None:
        """A folder's real count of messages to fetch is known now."""
        self.total = max(self.done, self.total + delta)

    def report_now(self) -> None:
        percent = 100.0 * self.done / self.total if self.total else 0.0
        self._report(percent, {"fetched": self.done, "total": self.total})
        self._last = time.monotonic()


def _check_stop(stopping: threading.Event, doing: str) -> None:
    if stopping.is_set():
        raise Stopped(f"stopped while {doing}; the next sync resumes from the last committed batch")
