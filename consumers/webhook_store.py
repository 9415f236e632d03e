"""What each webhook receiver acknowledged (webhook_deliveries) or rejected for good
(webhook_rejections, with its answer, until re-sent)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.exc import SQLAlchemyError

DELIVERED = text(
    "SELECT 1 FROM webhook_deliveries WHERE receiver = :receiver AND event_id = :event_id"
)
# DO NOTHING: two dispatchers may both get a 2xx for the same event during a
# rebalance; the first acknowledgement recorded is the one that counts.
RECORD = text(
    "INSERT INTO webhook_deliveries (receiver, event_id, attempts) "
    "VALUES (:receiver, :event_id, :attempts) ON CONFLICT DO NOTHING"
)
REJECTED = text(
    "SELECT 1 FROM webhook_rejections WHERE receiver = :receiver AND event_id = :event_id"
)
# A second rejection of the same event (a resend refused again) keeps the latest answer.
REJECT = text(
    "INSERT INTO webhook_rejections (receiver, event_id, event_type, user_id, envelope, "
    "status_code, response_excerpt, attempts) VALUES (:receiver, :event_id, :event_type, "
    ":user_id, CAST(:envelope AS jsonb), :status_code, :excerpt, :attempts) "
    "ON CONFLICT (receiver, event_id) DO UPDATE SET status_code = excluded.status_code, "
    "response_excerpt = excluded.response_excerpt, attempts = excluded.attempts, "
    "rejected_at = clock_timestamp()"
)
REJECTIONS = text(
    "SELECT receiver, event_id::text, event_type, user_id, envelope, status_code, "
    "response_excerpt, attempts, rejected_at FROM webhook_rejections ORDER BY rejected_at"
)
FORGET = text("DELETE FROM webhook_rejections WHERE receiver = :receiver AND event_id = :event_id")
EXCERPT_CHARS = 500


class DeliveryStoreUnavailable(Exception):
    """The database could not answer; the caller retries and must not commit offsets."""


@dataclass(frozen=True)
class Rejection:
    """An event a receiver refused for good, and what it answered."""

    receiver: str
    event_id: str
    event_type: str
    user_id: str
    envelope: dict[str, Any]
    status_code: int | None
    response_excerpt: str
    attempts: int
    rejected_at: datetime


class WebhookStore:
    """Acknowledged pairs are never sent again; rejected ones wait for `rejected resend`."""

    def __init__(self, database_url: str) -> None:
        self._engine = create_engine(
            database_url,
            pool_size=1,
            max_overflow=1,
            pool_pre_ping=True,
            connect_args={"connect_timeout": 3},
        )

    @contextmanager
    def _connection(self, write: bool = False) -> Iterator[Connection]:
        try:
            with self._engine.begin() if write else self._engine.connect() as conn:
                yield conn
        except SQLAlchemyError as error:
            raise DeliveryStoreUnavailable(repr(error)) from error

    def delivered(self, receiver: str, event_id: str) -> bool:
        """True when receiver already acknowledged event_id."""
        with self._connection() as conn:
            row = conn.execute(DELIVERED, {"receiver": receiver, "event_id": event_id})
            return row.first() is not None

    def rejected(self, receiver: str, event_id: str) -> bool:
        """True when receiver rejected event_id for good and it was not re-sent since."""
        with self._connection() as conn:
            row = conn.execute(REJECTED, {"receiver": receiver, "event_id": event_id})
            return row.first() is not None

    def record(self, receiver: str, event_id: str, attempts: int) -> None:
        """Remember that receiver acknowledged event_id; its rejection by it is settled."""
        params = {"receiver": receiver, "event_id": event_id, "attempts": attempts}
        with self._connection(write=True) as conn:
            conn.execute(RECORD, params)
            conn.execute(FORGET, params)

    def forget(self, receiver: str, event_id: str) -> None:
        """Drop a rejection (it was re-sent to another receiver URL)."""
        with self._connection(write=True) as conn:
            conn.execute(FORGET, {"receiver": receiver, "event_id": event_id})

    def reject(
        self,
        receiver: str,
        envelope: dict[str, Any],
        status_code: int | None,
        response: str,
        attempts: int,
    ) -> None:
        """Keep an event receiver refused for good, with its answer (an excerpt of it)."""
        params = {
            "receiver": receiver,
            "event_id": envelope["event_id"],
            "event_type": envelope["event_type"],
            "user_id": envelope["user_id"],
            "envelope": json.dumps(envelope),
            "status_code": status_code,
            "excerpt": response[:EXCERPT_CHARS],
            "attempts": attempts,
        }
        with self._connection(write=True) as conn:
            conn.execute(REJECT, params)

    def rejections(self, event_ids: Sequence[str] | None = None) -> list[Rejection]:
        """Rejections, oldest first; only these events when ids are given."""
        with self._connection() as conn:
            rows = conn.execute(REJECTIONS).all()
        found = [Rejection(*row) for row in rows]
        return found if event_ids is None else [r for r in found if r.event_id in event_ids]

    def close(self) -> None:
        self._engine.dispose()
