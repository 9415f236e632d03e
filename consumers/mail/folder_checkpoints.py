"""The `mail_folders` checkpoints: what is stored of each folder and what the server last said.

A checkpoint vouches that every server UID from `low_uid` to `highest_uid` is stored (the
first sync comes down from the top, so `low_uid` is its low-water mark; 1 when done), that
every flag change up to `highest_modseq` is applied, and keeps the server's UIDNEXT and
MESSAGES of the last completed pass (`messages` -1: none yet). Each function runs in the
caller's transaction, next to the message writes the checkpoint covers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, text

from consumers.mail.message_batch import FolderRef

COLUMNS = "uidvalidity, highest_uid, low_uid, uidnext, messages, highest_modseq, flags_walked_at"
ONE = text(f"SELECT {COLUMNS} FROM mail_folders WHERE user_id = :user_id AND folder = :folder")
ALL = text(f"SELECT folder, {COLUMNS} FROM mail_folders WHERE user_id = :user_id")
LOCK = text(
    "SELECT uidvalidity FROM mail_folders WHERE user_id = :user_id AND folder = :folder FOR UPDATE"
)
START = text(
    "INSERT INTO mail_folders (user_id, folder, uidvalidity, highest_uid, low_uid, "
    "highest_modseq) VALUES (:user_id, :folder, :uidvalidity, :top, :top + 1, :modseq) "
    "ON CONFLICT (user_id, folder) DO UPDATE SET uidvalidity = EXCLUDED.uidvalidity, "
    "highest_uid = EXCLUDED.highest_uid, low_uid = EXCLUDED.low_uid, uidnext = 0, "
    "messages = -1, highest_modseq = EXCLUDED.highest_modseq, flags_walked_at = NULL, "
    "last_synced_at = clock_timestamp()"
)
REKEY = text(
    "UPDATE mail_folders SET uidvalidity = :uidvalidity, uidnext = 0, messages = -1, "
    "highest_modseq = :modseq, flags_walked_at = NULL, last_synced_at = clock_timestamp() "
    "WHERE user_id = :user_id AND folder = :folder"
)
RAISE_HIGH = text(
    "UPDATE mail_folders SET highest_uid = GREATEST(highest_uid, :uid), "
    "last_synced_at = clock_timestamp() WHERE user_id = :user_id AND folder = :folder"
)
LOWER_LOW = text(
    "UPDATE mail_folders SET low_uid = LEAST(low_uid, :uid), last_synced_at = clock_timestamp() "
    "WHERE user_id = :user_id AND folder = :folder"
)
MODSEQ = text(
    "UPDATE mail_folders SET highest_modseq = GREATEST(highest_modseq, :modseq) "
    "WHERE user_id = :user_id AND folder = :folder"
)
COUNTERS = text(
    "UPDATE mail_folders SET uidnext = :uidnext, messages = :messages, "
    "highest_modseq = GREATEST(highest_modseq, :modseq), "
    "flags_walked_at = CASE WHEN :walked THEN clock_timestamp() ELSE flags_walked_at END, "
    "last_synced_at = clock_timestamp() WHERE user_id = :user_id AND folder = :folder"
)
TOUCH = text(
    "UPDATE mail_folders SET last_synced_at = clock_timestamp() "
    "WHERE user_id = :user_id AND folder = ANY(:folders)"
)
DROP = text("DELETE FROM mail_folders WHERE user_id = :user_id AND folder = :folder")


@dataclass(frozen=True)
class Checkpoint:
    uidvalidity: int
    highest_uid: int
    low_uid: int = 1
    uidnext: int = 0
    messages: int = -1
    highest_modseq: int = 0
    flags_walked_at: datetime | None = None

    @property
    def first_sync_done(self) -> bool:
        return self.low_uid <= 1


def read(conn: Connection, user_id: str, folder: str) -> Checkpoint | None:
    row = conn.execute(ONE, {"user_id": user_id, "folder": folder}).one_or_none()
    return Checkpoint(*row) if row else None


def read_all(conn: Connection, user_id: str) -> dict[str, Checkpoint]:
    return {r[0]: Checkpoint(*r[1:]) for r in conn.execute(ALL, {"user_id": user_id})}


def locked_uidvalidity(conn: Connection, user_id: str, folder: str) -> int | None:
    """Holds the folder's row until commit; its UIDVALIDITY, or None if there is none."""
    found = conn.execute(LOCK, {"user_id": user_id, "folder": folder}).scalar_one_or_none()
    return int(found) if found is not None else None


def start(conn: Connection, ref: FolderRef, top: int, modseq: int) -> None:
    """A folder synced from nothing: UIDs up to `top` are fetched from the top down, each
    with flags at least as new as `modseq` (the server's when the sync selected it)."""
    conn.execute(START, {**ref.params(), "top": top, "modseq": modseq})


def rekey(conn: Connection, ref: FolderRef, modseq: int) -> None:
    """Kept under a new UIDVALIDITY, flags compared as of `modseq`."""
    conn.execute(REKEY, {**ref.params(), "modseq": modseq})


def raise_high(conn: Connection, ref: FolderRef, uid: int) -> None:
    conn.execute(RAISE_HIGH, {**ref.params(), "uid": uid})


def lower_low(conn: Connection, ref: FolderRef, uid: int) -> None:
    conn.execute(LOWER_LOW, {**ref.params(), "uid": uid})


def advance_modseq(conn: Connection, ref: FolderRef, modseq: int) -> None:
    conn.execute(MODSEQ, {**ref.params(), "modseq": modseq})


def set_counters(
    conn: Connection, ref: FolderRef, uidnext: int, messages: int, modseq: int, walked: bool
) -> None:
    params = {"uidnext": uidnext, "messages": messages, "modseq": modseq, "walked": walked}
    conn.execute(COUNTERS, {**ref.params(), **params})


def touch(conn: Connection, user_id: str, folders: list[str]) -> None:
    conn.execute(TOUCH, {"user_id": user_id, "folders": folders})


def drop(conn: Connection, user_id: str, folder: str) -> None:
    conn.execute(DROP, {"user_id": user_id, "folder": folder})
