"""Every sync brings flags and deletions, in each server mode of a real Dovecot: QRESYNC,
CONDSTORE only, and neither (Dovecot's `imap_capability` without them)."""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from consumers.executors import TaskSpec
from consumers.imap import server_commands
from consumers.imap.executor import ImapExecutor, ImapSettings
from consumers.mail.accounts import AccountStore
from consumers.mail.message_store import MessageStore
from consumers.mail.password_box import PasswordBox, new_key
from coordinator.dev.dovecot import Dovecot, start_dovecot
from tests.support.mailbox import append, imap, new_login
from tests.support.random_refs import random_user

KEY = new_key()
SETTINGS = ImapSettings(
    allowed_hosts=frozenset({"127.0.0.1"}), batch_size=7, report_every_seconds=0
)
WITHOUT = {
    "qresync": frozenset(),
    "condstore": frozenset({"QRESYNC"}),
    "plain": frozenset({"QRESYNC", "CONDSTORE"}),
}


@pytest.fixture(scope="module", params=list(WITHOUT))
def server(request: pytest.FixtureRequest, dovecot: Dovecot) -> Iterator[tuple[str, Dovecot]]:
    """The session's Dovecot (it offers both) or one configured without them."""
    mode: str = request.param
    if not WITHOUT[mode]:
        yield mode, dovecot
        return
    root = Path(tempfile.mkdtemp(prefix=f"sync-test-dovecot-{mode}-"))
    other = start_dovecot(root, without=WITHOUT[mode])
    try:
        yield mode, other
    finally:
        other.stop()
        shutil.rmtree(root, ignore_errors=True)


def sync(
    engine: Engine, user: str, kind: str = "incremental", settings: ImapSettings = SETTINGS
) -> dict[str, Any]:
    executor = ImapExecutor(AccountStore(engine, PasswordBox(KEY)), MessageStore(engine), settings)
    task = TaskSpec(user, random_user("task"), kind)
    return executor.run(task, lambda percent, stats: None, threading.Event())


def stored(engine: Engine, user: str) -> dict[str, tuple[int, list[str]]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT message_id, uid, flags FROM mail_messages WHERE user_id = :u"),
            {"u": user},
        ).all()
    return {r[0]: (int(r[1]), sorted(r[2])) for r in rows}


def registered(dovecot: Dovecot, engine: Engine, count: int) -> tuple[Any, str, list[str]]:
    account = new_login(dovecot)
    ids = append(account, count)
    user = random_user()
    AccountStore(engine, PasswordBox(KEY)).put(user, account)
    return account, user, ids


def test_an_incremental_sync_brings_flags_and_expunges(
    engine: Engine, server: tuple[str, Dovecot]
) -> None:
    mode, dovecot = server
    account, user, ids = registered(dovecot, engine, 12)
    assert sync(engine, user)["mode"] == mode
    uid_of = {mid: uid for mid, (uid, _) in stored(engine, user).items()}
    with imap(account) as client:
        client.select_folder("INBOX")
        client.add_flags([uid_of[ids[0]]], [b"\\Seen"])
        client.add_flags([uid_of[ids[1]]], [b"\\Flagged", b"$Work"])
        client.delete_messages([uid_of[ids[2]], uid_of[ids[3]]])
        client.expunge()
    again = sync(engine, user)
    assert again["removed"] == 2  # every mode sees expunges on every sync
    # Flags: on every sync with CONDSTORE/QRESYNC; without, only when a walk is due.
    assert again["flags_updated"] == (0 if mode == "plain" else 2)
    if mode == "plain":
        assert sync(engine, user, "full")["flags_updated"] == 2  # a full sync walks them
    now = stored(engine, user)
    assert set(now) == set(ids) - {ids[2], ids[3]}
    assert now[ids[0]][1] == ["\\Seen"] and now[ids[1]][1] == ["$Work", "\\Flagged"]
    after = sync(engine, user)
    assert (after["fetched"], after["removed"], after["flags_updated"]) == (0, 0, 0)


def test_without_condstore_the_walk_comes_when_due(engine: Engine, dovecot: Dovecot) -> None:
    """The same server with CONDSTORE turned off in the client's settings: a walk interval of
    0 makes every sync compare every flag."""
    account, user, _ = registered(dovecot, engine, 5)
    every_time = replace(
        SETTINGS, flag_walk_seconds=0, extensions_off=frozenset({"QRESYNC", "CONDSTORE"})
    )
    assert sync(engine, user, settings=every_time)["mode"] == "plain"
    with imap(account) as client:
        client.select_folder("INBOX")
        client.add_flags([1, 2, 3], [b"\\Answered"])
    assert sync(engine, user, settings=every_time)["flags_updated"] == 3


def test_an_unchanged_folder_costs_one_status(
    engine: Engine, server: tuple[str, Dovecot], monkeypatch: pytest.MonkeyPatch
) -> None:
    mode, dovecot = server
    account, user, _ = registered(dovecot, engine, 9)
    append(account, 3, folder="Work", tag="w")
    first = sync(engine, user)
    assert (first["fetched"], first["unchanged"]) == (12, 0)

    def no_examine(*args: Any) -> None:
        raise AssertionError("an unchanged folder was opened")

    monkeypatch.setattr(server_commands, "examine", no_examine)
    assert sync(engine, user)["unchanged"] == 2
    if mode != "plain":  # without CONDSTORE a full sync walks the flags
        assert sync(engine, user, "full")["unchanged"] == 2
    monkeypatch.undo()
    append(account, 2, folder="Work", tag="x", start=10)
    new_mail = sync(engine, user)
    assert (new_mail["unchanged"], new_mail["fetched"], new_mail["total"]) == (1, 2, 2)


def test_a_full_sync_fetches_what_is_missing(engine: Engine, server: tuple[str, Dovecot]) -> None:
    """Rows lost from the database are found by a full sync of a folder whose counters moved
    (the stored rows are counted against MESSAGES)."""
    _, dovecot = server
    account, user, ids = registered(dovecot, engine, 9)
    sync(engine, user)
    with engine.begin() as conn:
        conn.execute(
            text("DELETE FROM mail_messages WHERE user_id = :u AND message_id = ANY(:m)"),
            {"u": user, "m": ids[2:5]},
        )
    assert sync(engine, user)["fetched"] == 0  # the counters did not change
    more = append(account, 1, tag="more")
    assert sync(engine, user, "full")["fetched"] == 4
    assert set(stored(engine, user)) == set(ids + more)
