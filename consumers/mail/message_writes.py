"""The message store's writes inside a transaction: removals, flags, a folder forgotten, and
the checks every write makes first (the folder not started over, the account still there).

Each appends its change log entries in the same transaction (consumers/mail/change_log.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, text

from consumers.mail import change_log
from consumers.mail import folder_checkpoints as checkpoints
from consumers.mail.message_batch import FolderRef

IN_FOLDER = "user_id = :user_id AND folder = :folder AND uidvalidity = :uidvalidity"
OWNER_STILL_THERE = text(
    "SELECT 1 FROM mail_accounts WHERE user_id = :user_id AND host = :host AND port = :port "
    "AND username = :username FOR SHARE"
)
# Flags as space-separated text (IMAP flags are atoms): only rows that differ are written.
SET_FLAGS = text(
    "UPDATE mail_messages m SET flags = string_to_array(v.f, ' ') "
    "FROM unnest(CAST(:uids AS bigint[]), CAST(:flags AS text[])) AS v(uid, f) "
    "WHERE m.user_id = :user_id AND m.folder = :folder AND m.uidvalidity = :uidvalidity "
    "AND m.uid = v.uid AND m.flags <> string_to_array(v.f, ' ') RETURNING m.uid"
)
REMOVE = text(f"DELETE FROM mail_messages WHERE {IN_FOLDER} AND uid = ANY(:uids) RETURNING uid")
DROP_FOLDER_MESSAGES = text(
    "DELETE FROM mail_messages WHERE user_id = :user_id AND folder = :folder"
)
SYNCED_FOLDERS = text("SELECT folder FROM mail_folders WHERE user_id = :user_id")


class FolderMoved(Exception):
    """The folder's checkpoint names another UIDVALIDITY: a newer sync started it over; or the
    account the sync loaded was removed or now names another mailbox."""


@dataclass(frozen=True)
class Owner:
    """The account a sync loaded (the mailbox its UIDs belong to)."""

    host: str
    port: int
    username: str


def forget_user_mail(conn: Connection, user_id: str) -> None:
    """Every message and checkpoint of the user, in the caller's transaction (a
    `folder_removed` entry for each folder: the change log itself stays)."""
    for (folder,) in conn.execute(SYNCED_FOLDERS, {"user_id": user_id}).all():
        drop_folder(conn, user_id, folder)
    conn.execute(text("DELETE FROM mail_messages WHERE user_id = :u"), {"u": user_id})


def drop_folder(conn: Connection, user_id: str, folder: str) -> None:
    conn.execute(DROP_FOLDER_MESSAGES, {"user_id": user_id, "folder": folder})
    checkpoints.drop(conn, user_id, folder)
    change_log.record_folder_removed(conn, user_id, folder)


def remove(conn: Connection, ref: FolderRef, uids: Sequence[int]) -> list[int]:
    gone = sorted(int(r[0]) for r in conn.execute(REMOVE, {**ref.params(), "uids": list(uids)}))
    change_log.record_removed(conn, ref, gone)
    return gone


def set_flags(conn: Connection, ref: FolderRef, flags: dict[int, tuple[str, ...]]) -> int:
    if not flags:
        return 0
    params = {**ref.params(), "uids": list(flags), "flags": [" ".join(f) for f in flags.values()]}
    changed = sorted(int(r[0]) for r in conn.execute(SET_FLAGS, params))
    change_log.record_messages(conn, "flags_changed", ref, changed)
    return len(changed)


def check_owner(conn: Connection, ref: FolderRef, owner: Owner) -> None:
    if conn.execute(OWNER_STILL_THERE, {"user_id": ref.user_id, **owner.__dict__}).first() is None:
        raise FolderMoved(
            f"the IMAP account was removed or changed while this sync ran (folder "
            f"{ref.folder!r} not started)"
        )


def lock(conn: Connection, ref: FolderRef) -> None:
    """Hold the checkpoint row; refuse if another sync started the folder over meanwhile."""
    if checkpoints.locked_uidvalidity(conn, ref.user_id, ref.folder) != ref.uidvalidity:
        raise FolderMoved(f"folder {ref.folder!r} was started over by a newer sync")
