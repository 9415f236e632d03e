"""The outbox as the relay sees it: ordered batches, deletion after acks, leadership, wake-ups.

Records the broker refused for good leave it for the dead_letters table in the same
transaction that deletes the acknowledged ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import Engine, text

from coordinator.adapters.postgres.command_sql import OUTBOX_CHANNEL
from coordinator.adapters.postgres.dead_letters import DeadLetters, set_aside
from core.database import libpq_url, translated_errors

RELAY_LOCK_KEY = 7204186

CLAIM = text("SELECT id, event_id, user_id, payload FROM outbox ORDER BY id LIMIT :limit")
DELETE = text("DELETE FROM outbox WHERE id = ANY(:ids)")
BACKLOG = text(
    "SELECT count(*) AS rows, "
    "coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0) AS oldest_seconds "
    "FROM outbox"
)


@dataclass(frozen=True)
class OutboxRow:
    """One event waiting to be published."""

    id: int
    event_id: str
    user_id: str
    payload: dict[str, Any]


class OutboxStore:
    """Reads and clears the outbox table, in commit order per user."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.dead_letters = DeadLetters(engine)

    def next_batch(self, limit: int) -> list[OutboxRow]:
        """The oldest rows; a user's rows come in version order (they commit under its lock)."""
        with translated_errors(), self._engine.connect() as conn:
            rows = conn.execute(CLAIM, {"limit": limit}).all()
        return [OutboxRow(r.id, str(r.event_id), r.user_id, r.payload) for r in rows]

    def delete(self, ids: Sequence[int]) -> None:
        """Remove rows the broker has acknowledged."""
        with translated_errors(), self._engine.begin() as conn:
            conn.execute(DELETE, {"ids": list(ids)})

    def settle(self, acked: Sequence[int], refused: Sequence[tuple[int, str]]) -> None:
        """Delete acknowledged rows and set refused ones (id, reason) aside, in one transaction."""
        if not acked and not refused:
            return
        with translated_errors(), self._engine.begin() as conn:
            if acked:
                conn.execute(DELETE, {"ids": list(acked)})
            set_aside(conn, refused)

    def backlog(self) -> tuple[int, float]:
        """(rows waiting, age in seconds of the oldest)."""
        with translated_errors(), self._engine.connect() as conn:
            row = conn.execute(BACKLOG).one()
        return int(row.rows), float(row.oldest_seconds)


class RelayLeadership:
    """A session advisory lock held on a dedicated connection, which also LISTENs."""

    def __init__(self, sqlalchemy_url: str) -> None:
        self._url = libpq_url(sqlalchemy_url)
        self._conn: psycopg.Connection[Any] | None = None

    def try_acquire(self) -> bool:
        """Become leader if no other relay is; False means stand by."""
        self.release()
        conn = psycopg.connect(self._url, autocommit=True, connect_timeout=3)
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (RELAY_LOCK_KEY,)).fetchone()
        if not row or not row[0]:
            conn.close()
            return False
        conn.execute(f"LISTEN {OUTBOX_CHANNEL}")
        self._conn = conn
        return True

    def wait_for_news(self, timeout: float) -> bool:
        """Block until a command commits new outbox rows (True) or timeout (False)."""
        assert self._conn is not None
        woke = any(True for _ in self._conn.notifies(timeout=timeout, stop_after=1))
        # Several commits may have notified; drain them so the next wait really waits.
        for _ in self._conn.notifies(timeout=0.0):
            pass
        return woke

    def confirm(self) -> None:
        """Raise if the leader connection (and with it the lock) was lost."""
        assert self._conn is not None
        self._conn.execute("SELECT 1")

    def release(self) -> None:
        """Drop the connection; the lock goes with it."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
