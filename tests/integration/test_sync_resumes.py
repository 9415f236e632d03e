"""A first sync comes down from the newest mail; any sync stopped part-way (a cancel, a lost
connection, a database error between flag batches) resumes where it stopped."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import Engine, text

from consumers.executors import Stopped, TaskFailed, TaskSpec
from consumers.imap import fast_fetch, folder_changes
from consumers.imap.executor import ImapExecutor, ImapSettings
from consumers.mail.accounts import AccountStore, ImapAccount
from consumers.mail.database import MailStoreUnavailable
from consumers.mail.message_store import MessageStore
from consumers.mail.password_box import PasswordBox, new_key
from coordinator.dev.dovecot import Dovecot
from tests.support.mailbox import append, imap, new_login
from tests.support.random_refs import random_user

KEY = new_key()
SETTINGS = ImapSettings(
    allowed_hosts=frozenset({"127.0.0.1"}), batch_size=7, report_every_seconds=0
)


def registered(engine: Engine, account: ImapAccount) -> str:
    user = random_user()
    AccountStore(engine, PasswordBox(KEY)).put(user, account)
    return user


def run(
    engine: Engine, user: str, report: Any = None, stopping: threading.Event | None = None
) -> dict[str, Any]:
    executor = ImapExecutor(AccountStore(engine, PasswordBox(KEY)), MessageStore(engine), SETTINGS)
    task = TaskSpec(user, random_user("task"), "incremental")
    return executor.run(task, report or (lambda p, s: None), stopping or threading.Event())


def uids(engine: Engine, user: str) -> list[int]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT uid FROM mail_messages WHERE user_id = :u ORDER BY uid"), {"u": user}
        )
        return [int(r[0]) for r in rows]


def test_the_first_sync_comes_down_from_the_newest_and_resumes(
    engine: Engine, dovecot: Dovecot
) -> None:
    account = new_login(dovecot)
    append(account, 30)
    user = registered(engine, account)
    stopping = threading.Event()

    def cancel_after_the_first_batch(percent: float, stats: dict[str, Any]) -> None:
        assert stats["total"] == 30  # from the first report on: to do is the folder
        if stats["fetched"]:
            stopping.set()

    with pytest.raises(Stopped):
        run(engine, user, cancel_after_the_first_batch, stopping)
    kept = uids(engine, user)
    assert kept == list(range(17, 31))  # two batches of 7, the newest (the second was in hand)
    newest = MessageStore(engine).page(user, None, 1, None)
    assert newest[0]["uid"] == 30
    checkpoint = MessageStore(engine).checkpoint(user, "INBOX")
    assert checkpoint is not None and (checkpoint.low_uid, checkpoint.highest_uid) == (17, 30)
    seen: list[tuple[float, dict[str, Any]]] = []
    resumed = run(engine, user, lambda p, s: seen.append((p, s)))
    assert (resumed["fetched"], resumed["total"]) == (16, 16)  # nothing fetched twice
    assert uids(engine, user) == list(range(1, 31))
    assert [s["total"] for _, s in seen] == [16] * len(seen) and seen[-1][0] == 100.0
    again = run(engine, user)
    assert (again["fetched"], again["unchanged"]) == (0, 1)


def test_a_lost_connection_resumes_from_the_last_committed_batch(
    engine: Engine, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection drops as the third batch is fetched: the next attempt (a new
    connection, the same task) goes on below the two committed batches, fetching nothing
    twice."""
    account = new_login(dovecot)
    append(account, 20)
    user = registered(engine, account)
    fetched: list[int] = []
    real = fast_fetch.fetch_raw

    def drop_on_the_third(client: Any, batch: list[int], raw_max_bytes: int) -> Any:
        if len(fetched) == 14 and batch[0] == 6:
            fetched.append(-1)  # once
            raise ConnectionResetError("connection reset by peer")
        fetched.extend(batch)
        return real(client, batch, raw_max_bytes)

    monkeypatch.setattr("consumers.imap.folder_fetch.fetch_raw", drop_on_the_third)
    again = run(engine, user)
    assert again["fetched"] == 6  # the attempt that finished: UIDs 6 to 1
    assert -1 in fetched  # the drop happened
    received = [uid for uid in fetched if uid > 0]
    assert sorted(received) == list(range(1, 21))  # each message fetched once
    assert uids(engine, user) == list(range(1, 21))


@pytest.mark.parametrize("turned_off", [frozenset(), frozenset({"QRESYNC"})])
def test_flag_changes_resume_from_the_modseq_of_the_last_committed_batch(
    engine: Engine, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch, turned_off: frozenset[str]
) -> None:
    account = new_login(dovecot)
    append(account, 8)
    user = registered(engine, account)
    run(engine, user)
    with imap(account) as client:
        client.select_folder("INBOX")
        for uid in (1, 2, 3):  # three modseqs
            client.add_flags([uid], [b"\\Seen"])
        client.add_flags([4, 5, 6], [b"\\Flagged"])  # one STORE: one modseq for three
    monkeypatch.setattr(folder_changes, "FLAG_BATCH", 2)
    calls = 0
    real = MessageStore.set_flags

    def fail_the_third_batch(self: MessageStore, *args: Any, **kwargs: Any) -> int:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise MailStoreUnavailable("mail database unavailable: connection lost")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(MessageStore, "set_flags", fail_the_third_batch)
    executor_settings = ImapSettings(
        allowed_hosts=frozenset({"127.0.0.1"}), batch_size=7, extensions_off=turned_off
    )
    executor = ImapExecutor(
        AccountStore(engine, PasswordBox(KEY)), MessageStore(engine), executor_settings
    )
    task = TaskSpec(user, "t", "incremental")
    with pytest.raises(TaskFailed, match="resumes from the last committed batch"):
        executor.run(task, lambda p, s: None, threading.Event())
    monkeypatch.undo()
    # Batches: (1, 2), (3, 4) -- 4 shares its modseq with 5 and 6, so the checkpoint stays
    # below it -- then (5, 6) failed.
    resumed = ImapExecutor(
        AccountStore(engine, PasswordBox(KEY)), MessageStore(engine), executor_settings
    ).run(TaskSpec(user, "t2", "incremental"), lambda p, s: None, threading.Event())
    assert resumed["flags_updated"] == 2  # 5 and 6; 4 came again but was stored already
    with engine.connect() as conn:
        flags: dict[int, list[str]] = dict(
            conn.execute(
                text("SELECT uid, flags FROM mail_messages WHERE user_id = :u"), {"u": user}
            ).all()
        )
    assert [flags[u] for u in range(1, 9)] == [["\\Seen"]] * 3 + [["\\Flagged"]] * 3 + [[]] * 2
