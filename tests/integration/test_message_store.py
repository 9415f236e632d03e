"""The message store: a batch stored twice (a replaced task, a stale worker) stays one copy."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, text

from mail.message_batch import FolderRef, StoredMessage
from mail.message_store import FolderMoved, MessageStore
from tests.random_refs import random_user

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def message(uid: int, *flags: str) -> StoredMessage:
    return StoredMessage(
        uid, f"<{uid}@x>", "s", "f", "t", NOW, NOW, tuple(flags), 10, b"raw", False
    )


def rows(engine: Engine, user: str) -> list[tuple[int, list[str]]]:
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT uid, flags FROM mail_messages WHERE user_id = :u ORDER BY uid"),
            {"u": user},
        )
        return [(int(r[0]), list(r[1])) for r in found]


def test_a_batch_saved_again_is_upserted_not_duplicated(engine: Engine) -> None:
    store, ref = MessageStore(engine), FolderRef(random_user(), "INBOX", 7)
    store.start_over(ref)
    store.save(ref, [message(1), message(2)])
    store.save(ref, [message(2, "\\Seen"), message(3)])  # 2 is stored already
    assert rows(engine, ref.user_id) == [(1, []), (2, ["\\Seen"]), (3, [])]
    checkpoint = store.checkpoint(ref.user_id, "INBOX")
    assert checkpoint is not None and (checkpoint.uidvalidity, checkpoint.highest_uid) == (7, 3)


def test_a_writer_of_an_older_uidvalidity_is_refused(engine: Engine) -> None:
    store, old = MessageStore(engine), FolderRef(random_user(), "INBOX", 7)
    store.start_over(old)
    store.save(old, [message(1)])
    store.start_over(FolderRef(old.user_id, "INBOX", 8))  # a newer sync started it over
    with pytest.raises(FolderMoved):
        store.save(old, [message(2)])
    assert rows(engine, old.user_id) == []
