"""A batch of messages as `mail_messages` rows: their columns, and how a batch is written.

Binary COPY, straight into the table when none of the batch is stored yet, else into a
staging table and then one INSERT ... ON CONFLICT (an upsert): either costs a fraction of
row-by-row upserts, and the usual case writes each message's bytes once. A batch the database
refuses for one message's value is written one row at a time, and the refused rows are
handed back as Skipped, so one message never fails the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

BATCH_TYPES = {
    "user_id": "text",
    "folder": "text",
    "uidvalidity": "bigint",
    "uid": "bigint",
    "message_id": "text",
    "subject": "text",
    "sender": "text",
    "recipients": "text",
    "sent_at": "timestamptz",
    "received_at": "timestamptz",
    "flags": "text[]",
    "size": "integer",
    "raw": "bytea",
    "raw_truncated": "boolean",
}
BATCH_COLUMNS = ", ".join(BATCH_TYPES)
STAGING = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS mail_batch "
    f"({', '.join(f'{c} {t}' for c, t in BATCH_TYPES.items())}) ON COMMIT DELETE ROWS"
)
BATCH_TYPE_LIST = list(BATCH_TYPES.values())
UID_AT = list(BATCH_TYPES).index("uid")
COPY_DIRECT = f"COPY mail_messages ({BATCH_COLUMNS}) FROM STDIN (FORMAT BINARY)"
COPY_BATCH = f"COPY mail_batch ({BATCH_COLUMNS}) FROM STDIN (FORMAT BINARY)"
MERGE_BATCH = (
    f"INSERT INTO mail_messages ({BATCH_COLUMNS}) SELECT {BATCH_COLUMNS} FROM mail_batch "
    "ORDER BY uid ON CONFLICT (user_id, folder, uidvalidity, uid) "
    "DO UPDATE SET flags = EXCLUDED.flags"
)
INSERT_ONE = (
    f"INSERT INTO mail_messages ({BATCH_COLUMNS}) VALUES ({', '.join(['%s'] * len(BATCH_TYPES))}) "
    "ON CONFLICT (user_id, folder, uidvalidity, uid) DO UPDATE SET flags = EXCLUDED.flags"
)


@dataclass(frozen=True)
class StoredMessage:
    """One message as it is kept; `raw` holds at most the configured number of bytes."""

    uid: int
    message_id: str | None
    subject: str | None
    sender: str | None
    recipients: str | None
    sent_at: datetime | None
    received_at: datetime
    flags: tuple[str, ...]
    size: int
    raw: bytes | None
    raw_truncated: bool


@dataclass(frozen=True)
class Skipped:
    """A message a sync could not store, and why (kept in `mail_skipped`)."""

    uid: int
    reason: str


@dataclass(frozen=True)
class FolderRef:
    """The folder of one user under one UIDVALIDITY: what every write is scoped to."""

    user_id: str
    folder: str
    uidvalidity: int

    def params(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "folder": self.folder, "uidvalidity": self.uidvalidity}


def copy_batch(
    driver: psycopg.Connection[Any], ref: FolderRef, messages: Sequence[StoredMessage]
) -> list[Skipped]:
    """Write the batch in the caller's transaction; returns the messages the database refused."""
    with driver.cursor() as cursor:
        # A batch lost to a database crash loses its checkpoint with it (same transaction):
        # the next sync fetches it again. So no WAL flush wait per batch.
        cursor.execute("SET LOCAL synchronous_commit = off")
        rows = [_row(ref, m) for m in messages]
        try:
            # New messages (the usual case) are copied straight into the table ...
            with driver.transaction(), cursor.copy(COPY_DIRECT) as copy:
                copy.set_types(BATCH_TYPE_LIST)
                for row in rows:
                    copy.write_row(row)
        except psycopg.errors.UniqueViolation:
            # ... some already stored (a replaced task, a stale worker): upsert them.
            try:
                with driver.transaction():
                    cursor.execute(STAGING)
                    with cursor.copy(COPY_BATCH) as copy:
                        copy.set_types(BATCH_TYPE_LIST)
                        for row in rows:
                            copy.write_row(row)
                    cursor.execute(MERGE_BATCH)
            except REFUSED:
                return _one_by_one(driver, cursor, rows)
        except REFUSED:
            return _one_by_one(driver, cursor, rows)
    return []


# A value the database cannot hold (a code point it refuses, a number out of range), or one
# psycopg cannot send: that message is refused, not the batch.
REFUSED = (psycopg.DataError, UnicodeError, ValueError, OverflowError)


def _one_by_one(
    driver: psycopg.Connection[Any], cursor: psycopg.Cursor[Any], rows: list[tuple[Any, ...]]
) -> list[Skipped]:
    refused = []
    for row in rows:
        try:
            with driver.transaction():  # a savepoint each: a refused row undoes only itself
                cursor.execute(INSERT_ONE, row)
        except REFUSED as error:
            said = error.diag.message_primary if isinstance(error, psycopg.Error) else None
            reason = f"the database refused it ({said or error})"
            refused.append(Skipped(int(row[UID_AT]), reason[:500]))
    return refused


def _row(ref: FolderRef, m: StoredMessage) -> tuple[Any, ...]:
    """The message in BATCH_TYPES' column order."""
    return (
        ref.user_id,
        ref.folder,
        ref.uidvalidity,
        m.uid,
        m.message_id,
        m.subject,
        m.sender,
        m.recipients,
        m.sent_at,
        m.received_at,
        list(m.flags),
        m.size,
        m.raw,
        m.raw_truncated,
    )
