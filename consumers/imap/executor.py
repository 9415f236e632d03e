"""The `imap` executor: every folder of the user's account, progress at a bounded rate."""

from __future__ import annotations

import imaplib
import logging
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from consumers.executors import Report, Stopped, TaskFailed, TaskSpec
from consumers.imap import folder_sync
from mail.access_tokens import AccessTokens
from mail.accounts import AccountStore, ImapAccount
from mail.database import MailStoreUnavailable
from mail.imap_connection import LoginRefused, MailProblem, close, connect
from mail.message_store import FolderMoved, MessageStore, Owner
from mail.password_box import UnreadablePassword

log = logging.getLogger("consumers.imap")


@dataclass(frozen=True)
class ImapSettings:
    batch_size: int = 200
    raw_max_bytes: int = 1024 * 1024
    connect_attempts: int = 3
    timeout_seconds: float = 30.0
    report_every_seconds: float = 1.0
    first_backoff_seconds: float = 0.5
    allowed_hosts: frozenset[str] = frozenset()  # SYNC_MAIL_ALLOWED_HOSTS (mail.address_policy)


class ImapExecutor:
    """Syncs the task's user's IMAP account into the message store."""

    def __init__(
        self,
        accounts: AccountStore,
        messages: MessageStore,
        settings: ImapSettings,
        tokens: AccessTokens | None = None,
    ) -> None:
        self._accounts = accounts
        self._messages = messages
        self._settings = settings
        self._tokens = tokens  # OAuth2 accounts' access tokens

    def run(self, task: TaskSpec, report: Report, stopping: threading.Event) -> dict[str, Any]:
        try:
            account = self._accounts.load(task.user_id)
        except (UnreadablePassword, MailStoreUnavailable) as error:
            raise TaskFailed(str(error)) from None
        if account is None:
            raise TaskFailed("no IMAP account is registered for this user (PUT /accounts/imap)")
        try:
            client, account = self._login(account, task.user_id)
        except (MailProblem, MailStoreUnavailable, UnreadablePassword) as error:
            raise TaskFailed(str(error)) from None
        reconnected = False
        try:
            while True:
                try:
                    return self._sync(client, account, task, report, stopping)
                except (OSError, imaplib.IMAP4.abort):
                    # An OAuth2 session may be ended when its token expires (Exchange Online:
                    # "BYE Session invalidated - AccessTokenExpired"): one new login, and the
                    # sync goes on from the last committed batch.
                    if account.auth != "oauth2" or reconnected:
                        raise
                    reconnected = True
                    log.info("IMAP session of %s ended mid-sync; logging in again", task.user_id)
                    dropped = client
                    client, account = self._login(account, task.user_id)
                    close(dropped)
        except (MailProblem, UnreadablePassword) as error:
            raise TaskFailed(str(error)) from None
        except FolderMoved as error:
            raise TaskFailed(f"{error}; this sync stops") from None
        except MailStoreUnavailable as error:
            raise TaskFailed(
                f"{error}; the next sync resumes from the last committed batch"
            ) from None
        except (OSError, imaplib.IMAP4.abort) as error:
            raise TaskFailed(
                f"connection to the IMAP server at {account.address()} lost during the sync: "
                f"{error}; the next sync resumes from the last committed batch"
            ) from None
        finally:
            close(client)

    def _login(self, account: ImapAccount, user_id: str) -> tuple[IMAPClient, ImapAccount]:
        """A logged-in client; an OAuth2 account logs in with a current access token, and
        once more with a refreshed one if the server refuses it (revoked before it expired)."""
        if account.auth != "oauth2":
            return self._connect(account), account
        if self._tokens is None:
            raise MailProblem("this worker has no OAuth2 providers configured")
        token = self._tokens.current(user_id)
        try:
            return self._connect(replace(account, password=token)), account
        except LoginRefused:
            token = self._tokens.current(user_id, refused=token)
        return self._connect(replace(account, password=token)), account

    def _connect(self, account: ImapAccount) -> IMAPClient:
        s = self._settings
        return connect(
            account,
            allowed_hosts=s.allowed_hosts,
            attempts=s.connect_attempts,
            timeout=s.timeout_seconds,
            first_backoff=s.first_backoff_seconds,
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
        full = task.sync_type == "full"
        address = account.address()
        owner = Owner(account.host, account.port, account.username)
        folders = _folders(client, account)
        if full:
            for gone in set(self._messages.synced_folders(task.user_id)) - set(folders):
                self._messages.drop_folder(task.user_id, gone)
        plans = []
        for folder in folders:  # one SELECT and SEARCH each: a cancel must not wait for all
            _check_stop(stopping, f"planning {folder!r}")
            plans.append(
                folder_sync.plan(client, self._messages, task.user_id, folder, full, owner)
            )
        progress = _Progress(report, sum(len(p.to_fetch) for p in plans), stopping, self._settings)
        progress.report_now()
        totals = folder_sync.FolderOutcome()
        for folder_plan in plans:
            _check_stop(stopping, f"syncing {folder_plan.ref.folder!r}")
            outcome = folder_sync.run(
                client,
                self._messages,
                folder_plan,
                batch_size=self._settings.batch_size,
                raw_max_bytes=self._settings.raw_max_bytes,
                address=address,
                after_batch=progress.advance,
                check_stop=lambda doing: _check_stop(stopping, doing),
            )
            totals.fetched += outcome.fetched
            totals.flags_updated += outcome.flags_updated
            totals.removed += outcome.removed
            totals.skipped += outcome.skipped
        return {
            "folders": len(plans),
            "fetched": totals.fetched,
            "total": progress.total,
            "flags_updated": totals.flags_updated,
            "removed": totals.removed,
            "skipped": totals.skipped,
            "started_over": sum(1 for p in plans if p.started_over),
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

    def report_now(self) -> None:
        percent = 100.0 * self.done / self.total if self.total else 0.0
        self._report(percent, {"fetched": self.done, "total": self.total})
        self._last = time.monotonic()


def _check_stop(stopping: threading.Event, doing: str) -> None:
    if stopping.is_set():
        raise Stopped(f"stopped while {doing}; the next sync resumes from the last committed batch")


def _folders(client: IMAPClient, account: ImapAccount) -> list[str]:
    """The configured folders, or every selectable folder the server lists."""
    if account.folders is not None:
        return list(account.folders)
    try:
        listed = client.list_folders()
    except IMAPClientError as error:
        raise MailProblem(f"the IMAP server would not list folders: {error}") from None
    return [
        name
        for flags, _, name in listed
        if not {b"\\Noselect", b"\\NonExistent"} & {f for f in flags}
    ]
