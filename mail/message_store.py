"""The `mail_folders` checkpoints and the `mail_messages` they vouch for: writes and reads.

A folder's checkpoint (UIDVALIDITY, highest UID) is written in the transaction that stores
the batch it covers, so a sync that dies resumes after the last batch it committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine, text

from mail.database import database_errors
from mail.message_batch import FolderRef, Skipped, StoredMessage, copy_batch
from mail.skipped_mail import record_skipped

LISTED = (
    "folder, uidvalidity, uid, message_id, subject, sender, recipients, sent_at, received_at, "
    "flags, size"
)
CHECKPOINT = text(
    "SELECT uidvalidity, highest_uid FROM mail_folders WHERE user_id = :user_id "
    "AND folder = :folder"
)
LOCK_CHECKPOINT = text(
    "SELECT uidvalidity FROM mail_folders WHERE user_id = :user_id AND folder = :folder FOR UPDATE"
)
OWNER_STILL_THERE = text(
    "SELECT 1 FROM mail_accounts WHERE user_id = :user_id AND host = :host AND port = :port "
    "AND username = :username FOR SHARE"
)
START_OVER = text(
    "INSERT INTO mail_folders (user_id, folder, uidvalidity, highest_uid) "
    "VALUES (:user_id, :folder, :uidvalidity, 0) ON CONFLICT (user_id, folder) DO UPDATE "
    "SET uidvalidity = EXCLUDED.uidvalidity, highest_uid = 0, last_synced_at = clock_timestamp()"
)
ADVANCE = text(
    "UPDATE mail_folders SET highest_uid = GREATEST(highest_uid, :uid), "
    "last_synced_at = clock_timestamp() WHERE user_id = :user_id AND folder = :folder"
)
IN_FOLDER = "user_id = :user_id AND folder = :folder AND uidvalidity = :uidvalidity"
UIDS = text(f"SELECT uid FROM mail_messages WHERE {IN_FOLDER} ORDER BY uid")
FLAGS = text(f"SELECT uid, flags FROM mail_messages WHERE {IN_FOLDER} AND uid = ANY(:uids)")
SET_FLAGS = text(f"UPDATE mail_messages SET flags = :flags WHERE {IN_FOLDER} AND uid = :uid")
REMOVE = text(f"DELETE FROM mail_messages WHERE {IN_FOLDER} AND uid = ANY(:uids)")
DROP_FOLDER_MESSAGES = text(
    "DELETE FROM mail_messages WHERE user_id = :user_id AND folder = :folder"
)
DROP_FOLDER = text("DELETE FROM mail_folders WHERE user_id = :user_id AND folder = :folder")
SYNCED_FOLDERS = text("SELECT folder FROM mail_folders WHERE user_id = :user_id")
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


class FolderMoved(Exception):
    """The folder's checkpoint names another UIDVALIDITY: a newer sync started it over; or the
    account the sync loaded was removed or now names another mailbox."""


@dataclass(frozen=True)
class Owner:
    """The account a sync loaded (the mailbox its UIDs belong to)."""

    host: str
    port: int
    username: str


@dataclass(frozen=True)
class Checkpoint:
    uidvalidity: int
    highest_uid: int


class MessageStore:
    """Checkpoints and messages of every user; each call is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def checkpoint(self, user_id: str, folder: str) -> Checkpoint | None:
        with database_errors(), self._engine.connect() as conn:
            row = conn.execute(CHECKPOINT, {"user_id": user_id, "folder": folder}).one_or_none()
        return Checkpoint(int(row[0]), int(row[1])) if row else None

    def start_over(self, ref: FolderRef, owner: Owner) -> None:
        """Forget the folder's messages and checkpoint: its UIDs start again (new UIDVALIDITY).

        Only while mail_accounts still holds `owner` for the user (the row is held until the
        checkpoint is written): an account deleted or pointed at another mailbox meanwhile has
        had its mail forgotten, which this must not bring back (FolderMoved).
        """
        with database_errors(), self._engine.begin() as conn:
            params = {"user_id": ref.user_id, **owner.__dict__}
            if conn.execute(OWNER_STILL_THERE, params).first() is None:
                raise FolderMoved(
                    f"the IMAP account was removed or changed while this sync ran (folder "
                    f"{ref.folder!r} not started)"
                )
            conn.execute(DROP_FOLDER_MESSAGES, ref.params())
            conn.execute(START_OVER, ref.params())

    def save(
        self, ref: FolderRef, messages: Sequence[StoredMessage], skipped: Sequence[Skipped] = ()
    ) -> list[Skipped]:
        """Upsert a batch (ascending UIDs), list what cannot be stored in mail_skipped, and move
        the checkpoint past all of it, atomically. Returns every message skipped."""
        if not messages and not skipped:
            return []
        with database_errors(), self._engine.begin() as conn:
            _lock(conn, ref)
            driver = conn.connection.driver_connection
            assert isinstance(driver, psycopg.Connection)
            refused = copy_batch(driver, ref, messages) if messages else []
            everything = [*skipped, *refused]
            record_skipped(conn, ref, everything)
            highest = max([m.uid for m in messages] + [s.uid for s in skipped])
            conn.execute(ADVANCE, {**ref.params(), "uid": highest})
        return everything

    def local_uids(self, ref: FolderRef) -> list[int]:
        with database_errors(), self._engine.connect() as conn:
            return [int(r[0]) for r in conn.execute(UIDS, ref.params())]

    def flags_of(self, ref: FolderRef, uids: Sequence[int]) -> dict[int, tuple[str, ...]]:
        with database_errors(), self._engine.connect() as conn:
            rows = conn.execute(FLAGS, {**ref.params(), "uids": list(uids)})
            return {int(r[0]): tuple(r[1]) for r in rows}

    def set_flags(self, ref: FolderRef, flags: dict[int, tuple[str, ...]]) -> None:
        if not flags:
            return
        with database_errors(), self._engine.begin() as conn:
            _lock(conn, ref)
            rows = [{**ref.params(), "uid": uid, "flags": list(f)} for uid, f in flags.items()]
            conn.execute(SET_FLAGS, rows)

    def remove(self, ref: FolderRef, uids: Sequence[int]) -> None:
        if not uids:
            return
        with database_errors(), self._engine.begin() as conn:
            _lock(conn, ref)
            conn.execute(REMOVE, {**ref.params(), "uids": list(uids)})

    def touch(self, ref: FolderRef) -> None:
        """Record that the folder was synced now."""
        with database_errors(), self._engine.begin() as conn:
            _lock(conn, ref)
            conn.execute(ADVANCE, {**ref.params(), "uid": 0})

    def synced_folders(self, user_id: str) -> list[str]:
        with database_errors(), self._engine.connect() as conn:
            return [r[0] for r in conn.execute(SYNCED_FOLDERS, {"user_id": user_id})]

    def drop_folder(self, user_id: str, folder: str) -> None:
        """Forget a folder the server no longer has."""
        with database_errors(), self._engine.begin() as conn:
            conn.execute(DROP_FOLDER_MESSAGES, {"user_id": user_id, "folder": folder})
            conn.execute(DROP_FOLDER, {"user_id": user_id, "folder": folder})

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


def forget_user_mail(conn: Connection, user_id: str) -> None:
    """Every message and checkpoint of the user, in the caller's transaction."""
    conn.execute(text("DELETE FROM mail_messages WHERE user_id = :u"), {"u": user_id})
    conn.execute(text("DELETE FROM mail_folders WHERE user_id = :u"), {"u": user_id})


def _lock(conn: Connection, ref: FolderRef) -> None:
    """Hold the checkpoint row; refuse if another sync started the folder over meanwhile."""
    found = conn.execute(LOCK_CHECKPOINT, ref.params()).scalar_one_or_none()
    if found != ref.uidvalidity:
        raise FolderMoved(f"folder {ref.folder!r} was started over by a newer sync")


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
