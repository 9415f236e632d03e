"""The per-user mail change log (`mail_changes`, `mail_change_heads`): appends and pages.

Every write of the message store appends its changes here in its own transaction, so the
log says exactly what the store holds. Positions come from the user's head row, which each
append updates and so holds until commit: one user's changes commit in position order and a
reader paging by position never skips one that commits late. A message's fields are copied
into its entry when the entry is written (entries never change), so a mirror built from the
log alone needs no other read. The contract: docs/mail.md, "The change feed".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, text

from consumers.mail.message_batch import FolderRef

Kind = Literal[
    "message_added", "flags_changed", "message_removed", "mailbox_reset", "folder_removed"
]
MESSAGE_FIELDS = "message_id, subject, sender, recipients, sent_at, received_at, flags, size"
RESERVE = (
    "INSERT INTO mail_change_heads AS h (user_id, position) VALUES (:user_id, CAST(:n AS bigint)) "
    "ON CONFLICT (user_id) DO UPDATE SET position = h.position + EXCLUDED.position "
    "RETURNING h.position - CAST(:n AS bigint) AS base"
)
# The messages' rows as they are after the write, copied into the log by the database.
FROM_MESSAGES = text(
    f"WITH head AS ({RESERVE}) INSERT INTO mail_changes (user_id, position, kind, folder, "
    f"uidvalidity, uid, {MESSAGE_FIELDS}) SELECT m.user_id, "
    f"head.base + row_number() OVER (ORDER BY m.uid), :kind, m.folder, m.uidvalidity, m.uid, "
    f"{', '.join('m.' + f.strip() for f in MESSAGE_FIELDS.split(','))} "
    "FROM mail_messages m, head WHERE m.user_id = :user_id AND m.folder = :folder "
    "AND m.uidvalidity = :uidvalidity AND m.uid = ANY(:uids)"
)
REMOVED = text(
    f"WITH head AS ({RESERVE}) INSERT INTO mail_changes (user_id, position, kind, folder, "
    "uidvalidity, uid) SELECT :user_id, head.base + u.n, 'message_removed', :folder, "
    ":uidvalidity, u.uid FROM head, unnest(CAST(:uids AS bigint[])) WITH ORDINALITY AS u(uid, n)"
)
ONE = text(
    f"WITH head AS ({RESERVE}) INSERT INTO mail_changes (user_id, position, kind, folder, "
    "uidvalidity, previous_uidvalidity, rekeyed) SELECT :user_id, head.base + 1, :kind, "
    ":folder, :uidvalidity, :previous, :rekeyed FROM head"
)
PAGE = text(
    "SELECT h.position AS head, h.pruned_through, c.* FROM mail_change_heads h "
    "LEFT JOIN LATERAL (SELECT position, kind, folder, uidvalidity, uid, previous_uidvalidity, "
    f"rekeyed, {MESSAGE_FIELDS}, recorded_at FROM mail_changes WHERE user_id = h.user_id "
    "AND position > :after ORDER BY position LIMIT :limit) c ON true WHERE h.user_id = :user_id"
)
OLDEST = text(
    "SELECT recorded_at < clock_timestamp() - make_interval(secs => :seconds) "
    "FROM mail_changes WHERE user_id = :user_id ORDER BY position LIMIT 1"
)
# Positions follow commit order, so the entries past the window are a prefix of the log: at
# most PRUNE_BATCH of them go per call, found by the primary key, never by a scan of the log.
PRUNE_BATCH = 5000
PRUNE = text(
    "WITH first AS (SELECT position, recorded_at FROM mail_changes WHERE user_id = :user_id "
    f"ORDER BY position LIMIT {PRUNE_BATCH}), "
    "upto AS (SELECT max(position) AS p FROM first "
    "WHERE recorded_at < clock_timestamp() - make_interval(secs => :seconds)), "
    "gone AS (DELETE FROM mail_changes WHERE user_id = :user_id "
    "AND position <= (SELECT p FROM upto) RETURNING position) "
    "UPDATE mail_change_heads SET pruned_through = GREATEST(pruned_through, "
    "(SELECT max(position) FROM gone)) WHERE user_id = :user_id AND EXISTS (SELECT 1 FROM gone)"
)


def record_messages(conn: Connection, kind: Kind, ref: FolderRef, uids: Sequence[int]) -> None:
    """`message_added` or `flags_changed` for these stored messages, as they now are."""
    if uids:
        params = {**ref.params(), "n": len(uids), "kind": kind, "uids": list(uids)}
        conn.execute(FROM_MESSAGES, params)


def record_removed(conn: Connection, ref: FolderRef, uids: Sequence[int]) -> None:
    if uids:
        conn.execute(REMOVED, {**ref.params(), "n": len(uids), "uids": list(uids)})


def record_reset(conn: Connection, ref: FolderRef, previous: int, rekeyed: bool) -> None:
    """The folder's UIDVALIDITY changed: its messages moved to the new one (`rekeyed`) or
    were all dropped; one entry either way."""
    conn.execute(
        ONE,
        {**ref.params(), "n": 1, "kind": "mailbox_reset", "previous": previous, "rekeyed": rekeyed},
    )


def record_folder_removed(conn: Connection, user_id: str, folder: str) -> None:
    params = {"user_id": user_id, "folder": folder, "uidvalidity": None, "previous": None}
    conn.execute(ONE, {**params, "n": 1, "kind": "folder_removed", "rekeyed": None})


class CursorGone(Exception):
    """The entries after the cursor were pruned (older than the retention window)."""


class CursorAhead(Exception):
    """The cursor names a position this user's log has not reached."""


@dataclass(frozen=True)
class ChangePage:
    changes: list[dict[str, Any]]
    head: int  # the newest position written


def page(conn: Connection, user_id: str, after: int, limit: int) -> ChangePage:
    """Entries after position `after`, oldest first; one statement, so one snapshot."""
    rows = conn.execute(PAGE, {"user_id": user_id, "after": after, "limit": limit}).mappings().all()
    if not rows:  # nothing was ever recorded for this user
        if after > 0:
            raise CursorAhead(after)
        return ChangePage([], 0)
    head, pruned = int(rows[0]["head"]), int(rows[0]["pruned_through"])
    if after > head:
        raise CursorAhead(after)
    if after < pruned:
        raise CursorGone(pruned)
    changes = [dict(r) for r in rows if r["position"] is not None]
    for change in changes:
        del change["head"], change["pruned_through"]
    return ChangePage(changes, head)


def prune(conn: Connection, user_id: str, retention_seconds: float) -> None:
    """Drop the user's entries older than the retention window, remembering how far."""
    params = {"user_id": user_id, "seconds": retention_seconds}
    while conn.execute(OLDEST, params).scalar():
        conn.execute(PRUNE, params)
