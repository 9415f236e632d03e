"""The `mail_messages` of every user, written with the checkpoints that vouch for them.

A folder's checkpoint (folder_checkpoints.py) is written in the transaction that
stores the batch it covers, so a sync that dies resumes after the last batch it committed;
the change log entries (change_log.py) of each write go in the same transaction; the writes
shared by several calls are in message_writes.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import Engine, text

from consumers.mail import change_log
from consumers.mail import folder_checkpoints as checkpoints
from consumers.mail import message_writes as writes
from consumers.mail.database import database_errors
from consumers.mail.folder_checkpoints import Checkpoint
from consumers.mail.message_batch import FolderRef, Skipped, StoredMessage, copy_batch
from consumers.mail.message_writes import (
    DROP_FOLDER_MESSAGES,
    SYNCED_FOLDERS,
    FolderMoved,
    Owner,
    forget_user_mail,
)
from consumers.mail.skipped_mail import record_skipped

__all__ = ["Checkpoint", "FolderMoved", "MessageStore", "Owner", "forget_user_mail"]

LISTED = (
    "folder, uidvalidity, uid, message_id, subject, sender, recipients, sent_at, received_at, "
    "flags, size"
)
IN_FOLDER = "user_id = :user_id AND folder = :folder AND uidvalidity = :uidvalidity"
UIDS = text(
    f"SELECT uid FROM mail_messages WHERE {IN_FOLDER} AND uid BETWEEN :low AND :high ORDER BY uid"
)
COUNT = text(f"SELECT count(*) FROM mail_messages WHERE {IN_FOLDER}")
FLAGS = text(f"SELECT uid, flags FROM mail_messages WHERE {IN_FOLDER} AND uid = ANY(:uids)")
MESSAGE_IDS = text(
    f"SELECT uid, message_id FROM mail_messages WHERE {IN_FOLDER} AND uid = ANY(:uids)"
)
REKEY = text(
    "UPDATE mail_messages SET uidvalidity = :uidvalidity WHERE user_id = :user_id "
    "AND folder = :folder AND uidvalidity = :previous"
)
FOLDERS = text(
    "SELECT f.folder, f.uidvalidity, f.last_synced_at, (SELECT count(*) FROM mail_messages m "
    "WHERE m.user_id = f.user_id AND m.folder = f.folder) AS messages "
    "FROM mail_folders f WHERE f.user_id = :user_id ORDER BY f.folder"
)
PAGE = text(
    f"SELECT {LISTED} FROM mail_messages WHERE user_id = :user_id "
    "AND (CAST(:folder AS text) IS NULL OR folder = :folder) "
    "AND (CAST(:before_at AS timestamptz) IS NULL OR (received_at, folder, uid) < "
    "     (CAST(:before_at AS timestamptz), :before_folder, :before_uid)) "
    "ORDER BY received_at DESC, folder DESC, uid DESC LIMIT :limit"
)


class MessageStore:
    """Checkpoints and messages of every user; each call is one transaction, and each change it
    makes is appended to the user's change log in that transaction (mail/change_log.py)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def checkpoint(self, user_id: str, folder: str) -> Checkpoint | None:
        with database_errors(), self._engine.connect() as conn:
            return checkpoints.read(conn, user_id, folder)

    def checkpoints(self, user_id: str) -> dict[str, Checkpoint]:
        with database_errors(), self._engine.connect() as conn:
            return checkpoints.read_all(conn, user_id)

    def start_over(
        self,
        ref: FolderRef,
        owner: Owner,
        top: int = 0,
        previous: int | None = None,
        modseq: int = 0,
    ) -> None:
        """Forget the folder's messages and checkpoint: its UIDs start again (new UIDVALIDITY,
        or never synced); UIDs up to `top` are then fetched newest first.

        Only while mail_accounts still holds `owner` for the user (the row is held until the
        checkpoint is written): an account deleted or pointed at another mailbox meanwhile has
        had its mail forgotten, which this must not bring back (FolderMoved).
        """
        with database_errors(), self._engine.begin() as conn:
            writes.check_owner(conn, ref, owner)
            conn.execute(DROP_FOLDER_MESSAGES, ref.params())
            checkpoints.start(conn, ref, top, modseq)
            if previous is not None:
                change_log.record_reset(conn, ref, previous, rekeyed=False)

    def rekey(
        self,
        ref: FolderRef,
        owner: Owner,
        previous: int,
        dropped: Sequence[int],
        flags: dict[int, tuple[str, ...]],
        modseq: int,
    ) -> None:
        """Keep the folder's messages under its new UIDVALIDITY but `dropped` (UIDs whose
        Message-ID the server no longer has at that UID), with the server's `flags` as of
        `modseq`: one `mailbox_reset` entry, then one per message that differs."""
        with database_errors(), self._engine.begin() as conn:
            writes.check_owner(conn, ref, owner)
            old = FolderRef(ref.user_id, ref.folder, previous)
            writes.lock(conn, old)
            writes.remove(conn, old, dropped)
            conn.execute(REKEY, {**ref.params(), "previous": previous})
            checkpoints.rekey(conn, ref, modseq)
            change_log.record_reset(conn, ref, previous, rekeyed=True)
            writes.set_flags(conn, ref, flags)

    def save(
        self,
        ref: FolderRef,
        messages: Sequence[StoredMessage],
        skipped: Sequence[Skipped] = (),
        downward: bool = False,
    ) -> list[Skipped]:
        """Upsert a batch, list what cannot be stored in mail_skipped, and move the checkpoint
        past all of it, atomically: up above the highest UID (new mail), or `downward` to the
        batch's lowest UID (the first sync's low-water mark). Returns every message skipped."""
        if not messages and not skipped:
            return []
        uids = [m.uid for m in messages] + [s.uid for s in skipped]
        with database_errors(), self._engine.begin() as conn:
            writes.lock(conn, ref)
            driver = conn.connection.driver_connection
            assert isinstance(driver, psycopg.Connection)
            refused = copy_batch(driver, ref, messages) if messages else []
            everything = [*skipped, *refused]
            record_skipped(conn, ref, everything)
            change_log.record_messages(conn, "message_added", ref, [m.uid for m in messages])
            if downward:
                checkpoints.lower_low(conn, ref, min(uids))
            else:
                checkpoints.raise_high(conn, ref, max(uids))
        return everything

    def first_sync_done(self, ref: FolderRef) -> None:
        """No server UID is left below the low-water mark."""
        with database_errors(), self._engine.begin() as conn:
            writes.lock(conn, ref)
            checkpoints.lower_low(conn, ref, 1)

    def local_uids(self, ref: FolderRef, low: int = 1, high: int = 2**63 - 1) -> list[int]:
        with database_errors(), self._engine.connect() as conn:
            params = {**ref.params(), "low": low, "high": high}
            return [int(r[0]) for r in conn.execute(UIDS, params)]

    def count(self, ref: FolderRef) -> int:
        with database_errors(), self._engine.connect() as conn:
            return int(conn.execute(COUNT, ref.params()).scalar_one())

    def flags_of(self, ref: FolderRef, uids: Sequence[int]) -> dict[int, tuple[str, ...]]:
        with database_errors(), self._engine.connect() as conn:
            rows = conn.execute(FLAGS, {**ref.params(), "uids": list(uids)})
            return {int(r[0]): tuple(r[1]) for r in rows}

    def message_ids(self, ref: FolderRef, uids: Sequence[int]) -> dict[int, str | None]:
        with database_errors(), self._engine.connect() as conn:
            rows = conn.execute(MESSAGE_IDS, {**ref.params(), "uids": list(uids)})
            return {int(r[0]): r[1] for r in rows}

    def set_flags(
        self, ref: FolderRef, flags: dict[int, tuple[str, ...]], modseq: int | None = None
    ) -> int:
        """Write the flags that differ (sorted, as `fetched.flags_of` gives them) and, with
        `modseq`, move the folder's modseq checkpoint up to it; the number of rows changed."""
        if not flags and modseq is None:
            return 0
        with database_errors(), self._engine.begin() as conn:
            writes.lock(conn, ref)
            changed = writes.set_flags(conn, ref, flags)
            if modseq is not None:
                checkpoints.advance_modseq(conn, ref, modseq)
        return changed

    def remove(self, ref: FolderRef, uids: Sequence[int]) -> int:
        """Delete what the server expunged; the number of rows that were stored."""
        if not uids:
            return 0
        with database_errors(), self._engine.begin() as conn:
            writes.lock(conn, ref)
            gone = writes.remove(conn, ref, uids)
        return len(gone)

    def finish_pass(
        self, ref: FolderRef, uidnext: int, messages: int, modseq: int, walked: bool
    ) -> None:
        """The server's counters as of this pass's start: the next sync compares with them."""
        with database_errors(), self._engine.begin() as conn:
            writes.lock(conn, ref)
            checkpoints.set_counters(conn, ref, uidnext, messages, modseq, walked)

    def finish_sync(self, user_id: str, unchanged: list[str], retention_seconds: float) -> None:
        """Record that the `unchanged` folders were synced now, and drop the user's change log
        entries older than the retention window: one transaction."""
        with database_errors(), self._engine.begin() as conn:
            if unchanged:
                checkpoints.touch(conn, user_id, unchanged)
            change_log.prune(conn, user_id, retention_seconds)

    def synced_folders(self, user_id: str) -> list[str]:
        with database_errors(), self._engine.connect() as conn:
            return [r[0] for r in conn.execute(SYNCED_FOLDERS, {"user_id": user_id})]

    def drop_folder(self, user_id: str, folder: str) -> None:
        """Forget a folder the server no longer has."""
        with database_errors(), self._engine.begin() as conn:
            writes.drop_folder(conn, user_id, folder)

    def folders(self, user_id: str) -> list[dict[str, Any]]:
        """Each synced folder with its message count and the time of its last sync."""
        with database_errors(), self._engine.connect() as conn:
            return [dict(r) for r in conn.execute(FOLDERS, {"user_id": user_id}).mappings()]

    def page(
        self,
        user_id: str,
        folder: str | None,
        limit: int,
        before: tuple[datetime, str, int] | None,
    ) -> list[dict[str, Any]]:
        """Newest first, keyset-paginated by (received_at, folder, uid)."""
        params = {
            "user_id": user_id,
            "folder": folder,
            "limit": limit,
            "before_at": before[0] if before else None,
            "before_folder": before[1] if before else "",
            "before_uid": before[2] if before else 0,
        }
        with database_errors(), self._engine.connect() as conn:
            return [dict(r) for r in conn.execute(PAGE, params).mappings()]

    def changes(self, user_id: str, after: int, limit: int) -> change_log.ChangePage:
        """The user's change log after position `after` (CursorGone, CursorAhead)."""
        with database_errors(), self._engine.connect() as conn:
            return change_log.page(conn, user_id, after, limit)


HIGHEST_UIDS = text(
    "SELECT user_id, max(uid) FROM mail_messages "
    "WHERE user_id = ANY(:user_ids) AND folder = :folder GROUP BY user_id"
)


def highest_uids(engine: Engine, user_ids: Sequence[str], folder: str) -> dict[str, int]:
    """The highest UID stored in `folder` per user (users with none stored are left out): a
    watcher compares it with the server's UIDNEXT to notice mail that came while unwatched."""
    with database_errors(), engine.connect() as conn:
        rows = conn.execute(HIGHEST_UIDS, {"user_ids": list(user_ids), "folder": folder}).all()
    return {user_id: int(uid) for user_id, uid in rows}
