"""The `mail_skipped` list: messages a sync could not store, each with the reason.

Written in the transaction of the batch the message came in (the folder's checkpoint moves
past it, so a sync does not stall on it), read by `GET /mail/skipped`. A row belongs to its
folder under one UIDVALIDITY: rows of an older one are not listed, and forgetting the folder
(its `mail_folders` row) forgets them (ON DELETE CASCADE).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, text

from consumers.mail.database import database_errors
from consumers.mail.message_batch import FolderRef, Skipped

RECORD = text(
    "INSERT INTO mail_skipped (user_id, folder, uidvalidity, uid, reason) "
    "VALUES (:user_id, :folder, :uidvalidity, :uid, :reason) "
    "ON CONFLICT (user_id, folder, uidvalidity, uid) "
    "DO UPDATE SET reason = EXCLUDED.reason, skipped_at = clock_timestamp()"
)
LISTED = text(
    "SELECT s.folder, s.uid, s.reason, s.skipped_at FROM mail_skipped s "
    "JOIN mail_folders f ON f.user_id = s.user_id AND f.folder = s.folder "
    "AND f.uidvalidity = s.uidvalidity WHERE s.user_id = :user_id "
    "AND (CAST(:folder AS text) IS NULL OR s.folder = :folder) "
    "ORDER BY s.folder, s.uid LIMIT :limit"
)


def record_skipped(conn: Connection, ref: FolderRef, skipped: Sequence[Skipped]) -> None:
    """List the messages in the caller's transaction (again: the newest reason wins)."""
    if skipped:
        conn.execute(RECORD, [{**ref.params(), "uid": s.uid, "reason": s.reason} for s in skipped])


class SkippedMail:
    """Reads of the list, scoped to one user."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def listed(self, user_id: str, folder: str | None = None, limit: int = 100) -> list[Any]:
        """(folder, uid, reason, skipped_at) rows of the folders' current UIDVALIDITY."""
        params = {"user_id": user_id, "folder": folder, "limit": limit}
        with database_errors(), self._engine.connect() as conn:
            return [dict(r) for r in conn.execute(LISTED, params).mappings()]
