"""The imap executor stops soon when asked, and never writes for an account that went away."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Engine, text

from consumers.executors import Stopped, TaskFailed, TaskSpec
from consumers.imap import folder_changes
from consumers.imap.executor import ImapExecutor, ImapSettings
from consumers.mail.accounts import AccountStore, ImapAccount
from consumers.mail.message_store import MessageStore
from consumers.mail.password_box import PasswordBox, new_key
from coordinator.dev.dovecot import Dovecot
from tests.support.mailbox import append, imap, new_login
from tests.support.random_refs import random_user

KEY = new_key()
SETTINGS = ImapSettings(
    batch_size=5, report_every_seconds=0, allowed_hosts=frozenset({"127.0.0.1"})
)


class DeletedOnceLoaded(AccountStore):
    """The account as a sync loads it, then removed: a DELETE racing the sync's first folder."""

    def load(self, user_id: str) -> ImapAccount | None:
        account = super().load(user_id)
        assert self.delete(user_id)
        return account


def registered(engine: Engine, account: ImapAccount) -> str:
    user = random_user()
    AccountStore(engine, PasswordBox(KEY)).put(user, account)
    return user


def run(
    engine: Engine,
    user: str,
    stopping: threading.Event,
    report: Any = None,
    kind: str = "full",
    settings: ImapSettings = SETTINGS,
) -> dict[str, Any]:
    executor = ImapExecutor(AccountStore(engine, PasswordBox(KEY)), MessageStore(engine), settings)
    task = TaskSpec(user, random_user("task"), kind)
    return executor.run(task, report or (lambda percent, stats: None), stopping)


def held(engine: Engine, user: str) -> tuple[int, int]:
    """(messages, folder checkpoints) stored for the user."""
    with engine.connect() as conn:
        messages = conn.execute(
            text("SELECT count(*) FROM mail_messages WHERE user_id = :u"), {"u": user}
        ).scalar_one()
        folders = conn.execute(
            text("SELECT count(*) FROM mail_folders WHERE user_id = :u"), {"u": user}
        ).scalar_one()
    return int(messages), int(folders)


def test_an_account_deleted_while_the_first_folder_is_planned_gets_no_mail_back(
    engine: Engine, dovecot: Dovecot
) -> None:
    login = new_login(dovecot)
    append(login, 4)
    user = registered(engine, login)
    executor = ImapExecutor(
        DeletedOnceLoaded(engine, PasswordBox(KEY)), MessageStore(engine), SETTINGS
    )
    with pytest.raises(TaskFailed, match="removed or changed while this sync ran"):
        executor.run(TaskSpec(user, "t", "full"), lambda p, s: None, threading.Event())
    assert held(engine, user) == (0, 0)


def test_a_stop_during_planning_searches_no_further_folder(
    engine: Engine, dovecot: Dovecot
) -> None:
    login = new_login(dovecot)
    append(login, 3)
    append(login, 2, folder="Work", tag="w")
    user = registered(engine, login)
    stopping = threading.Event()
    stopping.set()  # the cancel arrived as the sync logged in
    with pytest.raises(Stopped, match=r"while planning '(INBOX|Work)'"):
        run(engine, user, stopping)
    assert held(engine, user) == (0, 0)  # no folder was started


def test_a_stop_before_the_flag_walk_ends_the_sync_there(
    engine: Engine, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server without CONDSTORE: a full sync walks every flag, a round trip per 1,000."""
    login = new_login(dovecot)
    append(login, 6)
    user = registered(engine, login)
    plain = replace(SETTINGS, extensions_off=frozenset({"QRESYNC", "CONDSTORE"}))
    assert run(engine, user, threading.Event(), settings=plain)["fetched"] == 6
    with imap(login) as client:
        client.select_folder("INBOX")
        client.add_flags(client.search("ALL"), [b"\\Flagged"])
    stopping = threading.Event()
    looked = folder_changes.expunged

    def cancel_after_the_expunge_check(*args: Any) -> list[int]:
        found = looked(*args)
        stopping.set()  # the cancel arrives as the walk is about to start
        return found

    monkeypatch.setattr(folder_changes, "expunged", cancel_after_the_expunge_check)
    with pytest.raises(Stopped, match="while refreshing the flags of 'INBOX'"):
        run(engine, user, stopping, settings=plain)
    monkeypatch.undo()
    with engine.connect() as conn:
        flagged = conn.execute(
            text(
                "SELECT count(*) FROM mail_messages WHERE user_id = :u AND '\\Flagged' = ANY(flags)"
            ),
            {"u": user},
        ).scalar_one()
    assert flagged == 0  # no flag refreshed
    assert run(engine, user, threading.Event(), settings=plain)["flags_updated"] == 6
