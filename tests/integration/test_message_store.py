"""The message store: a batch stored twice (a replaced task, a stale worker) stays one copy."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, text

from consumers.mail.accounts import AccountStore, ImapAccount
from consumers.mail.message_batch import FolderRef, StoredMessage
from consumers.mail.message_store import FolderMoved, MessageStore, Owner
from consumers.mail.password_box import PasswordBox, new_key
from tests.support.random_refs import random_user

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ACCOUNTS_KEY = new_key()
OWNER = Owner("mail.example", 993, "ann")


def accounts(engine: Engine) -> AccountStore:
    return AccountStore(engine, PasswordBox(ACCOUNTS_KEY))


def owned(engine: Engine, ref: FolderRef, owner: Owner = OWNER) -> FolderRef:
    """Registers `owner` as the ref's user's account: what a sync would have loaded."""
    accounts(engine).put(
        ref.user_id, ImapAccount(owner.host, owner.port, "tls", owner.username, "p")
    )
    return ref


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
    store, ref = MessageStore(engine), owned(engine, FolderRef(random_user(), "INBOX", 7))
    store.start_over(ref, OWNER)
    store.save(ref, [message(1), message(2)])
    store.save(ref, [message(2, "\\Seen"), message(3)])  # 2 is stored already
    assert rows(engine, ref.user_id) == [(1, []), (2, ["\\Seen"]), (3, [])]
    checkpoint = store.checkpoint(ref.user_id, "INBOX")
    assert checkpoint is not None and (checkpoint.uidvalidity, checkpoint.highest_uid) == (7, 3)


def test_a_writer_of_an_older_uidvalidity_is_refused(engine: Engine) -> None:
    store, old = MessageStore(engine), owned(engine, FolderRef(random_user(), "INBOX", 7))
    store.start_over(old, OWNER)
    store.save(old, [message(1)])
    store.start_over(FolderRef(old.user_id, "INBOX", 8), OWNER)  # a newer sync started it over
    with pytest.raises(FolderMoved):
        store.save(old, [message(2)])
    assert rows(engine, old.user_id) == []


@pytest.mark.parametrize(
    "change", ["delete", "another host", "another port", "another login", "unchanged"]
)
def test_a_folder_is_started_over_only_for_the_account_the_sync_loaded(
    engine: Engine, change: str
) -> None:
    store, ref = MessageStore(engine), owned(engine, FolderRef(random_user(), "INBOX", 7))
    store.start_over(ref, OWNER)
    store.save(ref, [message(1)])
    # The user removes the account, or points it elsewhere, while a sync plans its folders.
    changed = {
        "another host": Owner("other.example", 993, "ann"),
        "another port": Owner("mail.example", 143, "ann"),
        "another login": Owner("mail.example", 993, "bob"),
        "unchanged": OWNER,
    }
    if change == "delete":
        assert accounts(engine).delete(ref.user_id)
    else:
        owned(engine, ref, changed[change])
    if change == "unchanged":
        store.start_over(ref, OWNER)
        assert store.checkpoint(ref.user_id, "INBOX") is not None
        return
    with pytest.raises(FolderMoved, match="removed or changed while this sync ran"):
        store.start_over(ref, OWNER)
    assert store.checkpoint(ref.user_id, "INBOX") is None
    with pytest.raises(FolderMoved):
        store.save(ref, [message(2)])  # nothing can be written for the old mailbox
    assert rows(engine, ref.user_id) == []
