"""The imap executor against a real Dovecot and PostgreSQL: what it stores, and why it stops."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from imapclient import IMAPClient
from sqlalchemy import Engine, text

from consumers.coordinator_client import Fenced
from consumers.executors import Stopped, TaskFailed, TaskSpec
from consumers.imap.executor import ImapExecutor, ImapSettings
from consumers.mail.accounts import AccountStore, ImapAccount
from consumers.mail.message_store import MessageStore
from consumers.mail.password_box import PasswordBox, new_key
from coordinator.dev.dovecot import Dovecot
from coordinator.dev.embedded import free_port
from tests.support.mailbox import append, imap, new_login
from tests.support.random_refs import random_user

KEY = new_key()
LOOPBACK = frozenset({"127.0.0.1"})  # the test Dovecot: listed, as an operator would
FAST = ImapSettings(
    allowed_hosts=LOOPBACK,
    batch_size=7,
    report_every_seconds=0,
    connect_attempts=2,
    first_backoff_seconds=0.05,
    timeout_seconds=5,
)


class Reports:
    """Collects progress reports; can answer like a coordinator that fenced the task."""

    def __init__(self, fence_after: int | None = None) -> None:
        self.seen: list[tuple[float, dict[str, Any]]] = []
        self._fence_after = fence_after

    def __call__(self, percent: float, stats: dict[str, Any]) -> None:
        if self._fence_after is not None and len(self.seen) >= self._fence_after:
            raise Fenced("task is not the live one")
        self.seen.append((percent, stats))


def executor(engine: Engine, settings: ImapSettings = FAST) -> ImapExecutor:
    return ImapExecutor(AccountStore(engine, PasswordBox(KEY)), MessageStore(engine), settings)


def register(engine: Engine, account: ImapAccount) -> str:
    user = random_user()
    AccountStore(engine, PasswordBox(KEY)).put(user, account)
    return user


def sync(
    engine: Engine, user: str, kind: str = "incremental", report: Reports | None = None
) -> dict[str, Any]:
    task = TaskSpec(user, random_user("task"), kind)
    return executor(engine).run(task, report or Reports(), threading.Event())


def stored(engine: Engine, user: str) -> dict[str, tuple[int, list[str]]]:
    """Message-ID -> (uid, flags) of what the user has; duplicates would fail the count."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT message_id, uid, flags FROM mail_messages WHERE user_id = :u"),
            {"u": user},
        ).all()
    found = {r[0]: (int(r[1]), sorted(r[2])) for r in rows}
    assert len(found) == len(rows), "a message is stored twice"
    return found


def test_incremental_fetches_exactly_the_new_messages(engine: Engine, dovecot: Dovecot) -> None:
    account = new_login(dovecot)
    first = append(account, 20)
    user = register(engine, account)
    reports = Reports()
    assert sync(engine, user, report=reports)["fetched"] == 20  # never synced: all of it
    assert set(stored(engine, user)) == set(first)
    percents = [p for p, _ in reports.seen]
    assert percents == sorted(percents) and percents[-1] == 100.0
    more = append(account, 5, start=20)
    again = sync(engine, user)
    assert (again["fetched"], again["total"], again["started_over"]) == (5, 5, 0)
    assert set(stored(engine, user)) == set(first + more)
    assert sync(engine, user)["fetched"] == 0


def test_a_changed_uidvalidity_syncs_the_folder_again(engine: Engine, dovecot: Dovecot) -> None:
    account = new_login(dovecot)
    old = append(account, 4, folder="Archive", tag="old")
    append(account, 2, tag="inbox")
    user = register(engine, account)
    sync(engine, user)
    validity = MessageStore(engine).checkpoint(user, "Archive")
    with imap(account) as client:
        client.delete_folder("Archive")
    new = append(account, 3, folder="Archive", tag="new")
    again = sync(engine, user)
    assert MessageStore(engine).checkpoint(user, "Archive") != validity
    assert (again["started_over"], again["fetched"]) == (1, 3)
    archive = {m for m in stored(engine, user) if "inbox" not in m}
    assert archive == set(new) and not archive & set(old)


def test_a_fenced_report_stops_the_sync_at_once(engine: Engine, dovecot: Dovecot) -> None:
    account = new_login(dovecot)
    append(account, 70)
    user = register(engine, account)
    with pytest.raises(Fenced):
        sync(engine, user, report=Reports(fence_after=2))  # the start, then one batch
    assert len(stored(engine, user)) == 2 * FAST.batch_size


def test_shutdown_past_grace_stops_between_batches(engine: Engine, dovecot: Dovecot) -> None:
    account = new_login(dovecot)
    append(account, 30)
    user = register(engine, account)
    stopping = threading.Event()

    def stop_after_first_batch(percent: float, stats: dict[str, Any]) -> None:
        if stats["fetched"]:
            stopping.set()  # batch 2 is being written as this report is sent

    with pytest.raises(Stopped, match="resumes"):
        executor(engine).run(TaskSpec(user, "t", "incremental"), stop_after_first_batch, stopping)
    kept = 2 * FAST.batch_size  # the batch in hand when the stop came is committed too
    assert len(stored(engine, user)) == kept
    assert sync(engine, user)["fetched"] == 30 - kept  # resumed from there


def failure(engine: Engine, account: ImapAccount) -> str:
    user = register(engine, account)
    with pytest.raises(TaskFailed) as failed:
        sync(engine, user)
    return str(failed.value)


def test_wrong_password_is_a_login_refused(engine: Engine, dovecot: Dovecot) -> None:
    account = new_login(dovecot)
    wrong = ImapAccount(account.host, account.port, "none", account.username, "not-it")
    reason = failure(engine, wrong)
    assert f"login refused by the IMAP server at {account.address()}" in reason
    assert "AUTHENTICATIONFAILED" in reason


def test_a_stopped_server_is_unreachable_after_bounded_retries(engine: Engine) -> None:
    port = free_port()  # nothing listens here
    reason = failure(engine, ImapAccount("127.0.0.1", port, "none", "u", "p"))
    assert f"IMAP server at 127.0.0.1:{port} unreachable after 2 attempts" in reason
    assert "refused" in reason.lower()


def test_tls_to_a_plain_port_is_a_tls_failure(engine: Engine, dovecot: Dovecot) -> None:
    account = new_login(dovecot)
    tls = ImapAccount(account.host, account.port, "tls", account.username, account.password)
    reason = failure(engine, tls)
    assert f"TLS with the IMAP server at {account.address()} failed" in reason
    assert "security setting" in reason


def test_a_vanished_folder_is_named(engine: Engine, dovecot: Dovecot) -> None:
    account = new_login(dovecot)
    only = ImapAccount(
        account.host, account.port, "none", account.username, account.password, folders=("Gone",)
    )
    assert "folder 'Gone' vanished from the IMAP server" in failure(engine, only)


def test_no_account_is_said(engine: Engine) -> None:
    with pytest.raises(TaskFailed, match="no IMAP account is registered"):
        sync(engine, random_user())


def test_a_host_outside_the_allowed_ones_is_not_contacted(engine: Engine, dovecot: Dovecot) -> None:
    user = register(engine, new_login(dovecot))
    only = ImapSettings(allowed_hosts=frozenset({"mail.example"}))
    with pytest.raises(TaskFailed, match="is not one this service may connect to"):
        executor(engine, only).run(TaskSpec(user, "t", "full"), Reports(), threading.Event())


def columns(engine: Engine, user: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT uid, message_id, subject, sender, recipients, sent_at, received_at, "
                    "flags, size, raw, raw_truncated FROM mail_messages WHERE user_id = :u "
                    "ORDER BY uid"
                ),
                {"u": user},
            )
        ]


@pytest.mark.parametrize("raw_max_bytes", [0, 100, 64 * 1024 - 1])
def test_answers_read_by_hand_match_imapclient_s(
    engine: Engine, dovecot: Dovecot, raw_max_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Raw bytes of 64 KiB and more take the hand-read FETCH path; below, imapclient's."""
    account = new_login(dovecot)
    append(account, 5)
    with imap(account) as client:
        client.select_folder("INBOX")
        client.add_flags([2], [b"\\Flagged", b"$Label"])
    fast_user, slow_user = register(engine, account), register(engine, account)
    with monkeypatch.context() as patch:
        patch.setattr(IMAPClient, "fetch", None)  # the hand-read path never calls it
        sync(engine, fast_user)
    slow = ImapSettings(raw_max_bytes=raw_max_bytes, report_every_seconds=0, allowed_hosts=LOOPBACK)
    executor(engine, slow).run(TaskSpec(slow_user, "t", "full"), Reports(), threading.Event())
    fast_rows, slow_rows = columns(engine, fast_user), columns(engine, slow_user)
    assert len(fast_rows) == 5 and fast_rows[1][7] == ["$Label", "\\Flagged"]
    assert fast_rows[0][2] == "m message 0" and fast_rows[0][3] == "Sender 0 <sender0@example.org>"
    for fast, slow_row in zip(fast_rows, slow_rows, strict=True):
        assert fast[:9] == slow_row[:9]  # everything but the raw bytes
        assert fast[9] is not None and len(fast[9]) == fast[8] and not fast[10]
        if raw_max_bytes == 0:
            assert slow_row[9] is None and slow_row[10]
        else:
            assert slow_row[9] == fast[9][:raw_max_bytes]
            assert slow_row[10] == (raw_max_bytes < fast[8])
