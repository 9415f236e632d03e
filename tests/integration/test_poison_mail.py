"""No message stops a sync: broken real-world mail synced from Dovecot, and rows PostgreSQL
refuses, are stored as far as they can be read or listed in mail_skipped, and the rest goes on."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from consumers.executors import TaskSpec
from consumers.imap.fetched import RAW, readable
from consumers.mail.message_batch import FolderRef, Skipped, StoredMessage
from consumers.mail.message_store import MessageStore
from consumers.mail.password_box import new_key
from consumers.mail.skipped_mail import SkippedMail
from coordinator.dev.dovecot import Dovecot
from tests.integration.app_harness import bearer, running_app, settings_for, user_token
from tests.integration.test_imap_executor import Reports, executor, register
from tests.support.broken_mail import broken_samples, deliver
from tests.support.mail_shapes import header_blocks
from tests.support.mailbox import append, imap, message, new_login
from tests.support.random_refs import random_user


def rows(engine: Engine, user: str) -> dict[int, dict[str, Any]]:
    with engine.connect() as conn:
        found = conn.execute(
            text(
                "SELECT uid, message_id, subject, sender, recipients, sent_at, raw "
                "FROM mail_messages WHERE user_id = :u"
            ),
            {"u": user},
        ).mappings()
        return {int(r["uid"]): dict(r) for r in found}


def test_the_issues_malformed_subject_no_longer_stops_the_mailbox(
    engine: Engine, dovecot: Dovecot
) -> None:
    """The mailbox of issue 18: a Subject `=?UTF-8?B?!!notbase64?=`, then a plain message."""
    account = new_login(dovecot)
    poison = message(1).replace(b"Subject: m message 1", b"Subject: =?UTF-8?B?!!notbase64?=")
    with imap(account) as client:
        client.append("INBOX", poison)
    append(account, 1, tag="after")
    user = register(engine, account)
    stats = executor(engine).run(TaskSpec(user, "t", "incremental"), Reports(), threading.Event())
    assert (stats["fetched"], stats["skipped"]) == (2, 0)
    subjects = sorted(r["subject"] for r in rows(engine, user).values())
    # The word that is not base64 is shown as written; the raw message is kept beside it.
    assert subjects == ["=?UTF-8?B?!!notbase64?=", "after message 0"]


def test_every_broken_sample_syncs_and_is_listed(engine: Engine, dovecot: Dovecot) -> None:
    account = new_login(dovecot)
    samples = broken_samples()
    deliver(dovecot, account, [*samples.values(), message(7, "plain")])
    user = register(engine, account)
    stats = executor(engine).run(TaskSpec(user, "t", "full"), Reports(), threading.Event())
    stored = rows(engine, user)
    assert (stats["fetched"], stats["skipped"]) == (len(samples) + 1, 0)
    assert len(stored) == len(samples) + 1  # every message listed, the plain one last
    by_id = {r["message_id"]: r for r in stored.values()}
    assert by_id["<plain-7@example.org>"]["subject"] == "plain message 7"
    assert by_id["<bad-base64@spam.example>"]["subject"] == "=?UTF-8?B?!!notbase64?="
    assert by_id["<8bit@legacy.example>"]["sender"] == "J\ufffdrgen M\ufffdller <jm@legacy.example>"
    assert "\ufffd" in by_id["<8bit@legacy.example>"]["subject"]
    assert by_id["<8bit@legacy.example>"]["subject"].endswith("and UTF-8 été")
    assert by_id["<charsets@old.example>"]["sender"] == "Ren\ufffd M\ufffdller <rene@old.example>"
    assert by_id["<folded@example.org>"]["subject"] == "Café au lait and plain text"
    assert by_id["<dup-1@example.org>"]["subject"] == "the first subject"  # the first wins
    assert by_id["<no-date@office.example>"]["sent_at"] is None
    assert by_id["<absurd-date@example.org>"]["sent_at"] is None
    assert by_id["<edge-date@example.org>"]["sent_at"] is None  # past year 9999 in UTC
    long = by_id["<long@spam.example>"]
    assert long["subject"] == "é" * 360  # adjacent encoded words join without the spaces
    assert len(long["recipients"]) == 2000 and long["recipients"].startswith("user000000@")
    nul = by_id["<nul\ufffd@example.org>"]  # Dovecot hands NUL out as 0x80: read as U+FFFD
    assert nul["subject"] == "before\ufffdafter enc oded"  # an encoded NUL: a space
    assert all(r["raw"] is not None for r in stored.values())  # raw bytes kept for every one
    assert sum(1 for r in stored.values() if r["raw"] == b"") == 1  # the empty message too


def new_folder(engine: Engine) -> FolderRef:
    ref = FolderRef(random_user(), "INBOX", 7)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO mail_folders (user_id, folder, uidvalidity, highest_uid) "
                "VALUES (:user_id, :folder, :uidvalidity, 0)"
            ),
            ref.params(),
        )
    return ref


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(header_blocks(), min_size=1, max_size=8))
def test_no_fuzzed_batch_is_stopped_by_its_content(engine: Engine, raws: list[bytes]) -> None:
    """Fuzzed messages go the executor's way (read, then one batch into PostgreSQL): every one
    is stored, none skipped, and the checkpoint covers the batch."""
    ref = new_folder(engine)
    when = datetime(2026, 1, 1, tzinfo=UTC)
    uids = list(range(1, len(raws) + 1))
    answer = {
        u: {b"FLAGS": (), b"INTERNALDATE": when, b"RFC822.SIZE": len(r), RAW: r}
        for u, r in enumerate(raws, 1)
    }
    messages, unreadable = readable(uids, answer, 1 << 20)
    store = MessageStore(engine)
    assert store.save(ref, messages, unreadable) == []
    assert sorted(rows(engine, ref.user_id)) == uids
    assert store.checkpoint(ref.user_id, "INBOX").highest_uid == uids[-1]  # type: ignore[union-attr]


def test_a_row_the_database_refuses_is_listed_and_the_batch_goes_on(
    engine: Engine, shared_database_url: str
) -> None:
    """NUL cannot be stored in PostgreSQL text: that message is skipped with the database's
    reason, its neighbours are stored, the checkpoint moves past all three, and the user reads
    the list at GET /mail/skipped."""
    ref = new_folder(engine)
    user = ref.user_id

    def one(uid: int, subject: str) -> StoredMessage:
        when = datetime(2026, 1, 1, tzinfo=UTC)
        return StoredMessage(uid, None, subject, None, None, None, when, (), 1, b"x", False)

    store = MessageStore(engine)
    skipped = store.save(ref, [one(1, "ok"), one(2, "nul \x00 here"), one(3, "ok too")])
    assert [s.uid for s in skipped] == [2] and "0x00" in skipped[0].reason
    assert sorted(rows(engine, user)) == [1, 3]
    settings = settings_for(shared_database_url, mail_key=new_key())
    with running_app(settings) as client:
        listed = client.get("/mail/skipped", headers=bearer(user_token(user))).json()["skipped"]
        others = client.get("/mail/skipped", headers=bearer(user_token(random_user()))).json()
    assert [(r["folder"], r["uid"]) for r in listed] == [("INBOX", 2)]
    assert "0x00" in listed[0]["reason"] and others["skipped"] == []
    assert store.checkpoint(user, "INBOX").highest_uid == 3  # type: ignore[union-attr]
    store.save(ref, [], [Skipped(9, "unreadable")])  # listed alone: the checkpoint moves too
    assert store.checkpoint(user, "INBOX").highest_uid == 9  # type: ignore[union-attr]
    store.drop_folder(user, "INBOX")
    assert SkippedMail(engine).listed(user) == []  # forgotten with its folder
