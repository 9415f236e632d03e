"""The dead_letters table: outbox records the broker refused for good, set aside and moved back.

This module is the table's only writer and reader; its queries define the columns once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, LiteralString, NamedTuple

from sqlalchemy import Connection, Engine, text

from coordinator.adapters.postgres.command_sql import OUTBOX_CHANNEL
from core.database import translated_errors

# One statement moves the rows, so a refused record is in exactly one of the two tables.
# A record refused again after a republish replaces its older entry instead of failing.
SET_ASIDE = text(
    "WITH refused AS ("
    "  SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:reasons AS text[])) AS r(id, reason)"
    "), moved AS ("
    "  DELETE FROM outbox o USING refused r WHERE o.id = r.id"
    "  RETURNING o.id, o.event_id, o.user_id, o.payload, r.reason"
    ") INSERT INTO dead_letters (event_id, user_id, payload, reason) "
    "SELECT event_id, user_id, payload, reason FROM moved ORDER BY id "
    "ON CONFLICT (event_id) DO UPDATE SET payload = EXCLUDED.payload, "
    "reason = EXCLUDED.reason, dead_at = EXCLUDED.dead_at"
)
# Back to the outbox in the order they were set aside; the relay publishes them as new rows.
REPUBLISH = text(
    "WITH moved AS ("
    "  DELETE FROM dead_letters WHERE :all OR event_id = ANY(CAST(:ids AS uuid[]))"
    "  RETURNING id, event_id, user_id, payload"
    ") INSERT INTO outbox (event_id, user_id, payload) "
    "SELECT event_id, user_id, payload FROM moved ORDER BY id "
    "ON CONFLICT (event_id) DO NOTHING RETURNING event_id::text"
)
NOTIFY = text(f"SELECT pg_notify('{OUTBOX_CHANNEL}', '')")
COUNT = text("SELECT count(*) FROM dead_letters")
# Without the payload, which may be the megabyte that was refused; plain SQL without
# parameters, so the replay tool's psycopg snapshot runs the same query.
LIST: LiteralString = (
    "SELECT event_id::text, user_id, "
    "coalesce(payload->>'stream_id', 'UserSync-' || user_id), "
    "(payload->>'version')::bigint, coalesce(payload->>'event_type', ''), "
    "octet_length(payload::text), reason, dead_at FROM dead_letters ORDER BY id"
)


class DeadLetter(NamedTuple):
    """One refused record, as listed (columns in the order LIST selects them)."""

    event_id: str
    user_id: str
    stream_id: str
    version: int | None
    event_type: str
    size_bytes: int
    reason: str
    dead_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The entry as JSON values."""
        return {**self._asdict(), "dead_at": self.dead_at.isoformat()}


def set_aside(conn: Connection, refused: Sequence[tuple[int, str]]) -> None:
    """Move outbox rows (id, reason) here, inside the caller's transaction."""
    if refused:
        ids, reasons = zip(*refused, strict=True)
        conn.execute(SET_ASIDE, {"ids": list(ids), "reasons": list(reasons)})


class DeadLetters:
    """Lists, counts and republishes dead letters."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def entries(self) -> list[DeadLetter]:
        """Every dead letter, oldest first."""
        with translated_errors(), self._engine.connect() as conn:
            return [DeadLetter._make(row) for row in conn.execute(text(LIST))]

    def count(self) -> int:
        """How many records are set aside."""
        with translated_errors(), self._engine.connect() as conn:
            return int(conn.execute(COUNT).scalar_one())

    def republish(self, event_ids: Sequence[str] | None) -> list[str]:
        """Move these (None: all) back to the outbox and wake the relay; the ids moved."""
        params = {"all": event_ids is None, "ids": list(event_ids or [])}
        with translated_errors(), self._engine.begin() as conn:
            moved = [str(row[0]) for row in conn.execute(REPUBLISH, params)]
            if moved:
                conn.execute(NOTIFY)
        return moved
