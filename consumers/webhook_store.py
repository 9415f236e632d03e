"""Which events each webhook receiver has acknowledged (table webhook_deliveries)."""

from __future__ import annotations

from sqlalchemy import create_engine, text
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


class DeliveryStoreUnavailable(Exception):
    """The database could not answer; the caller retries and must not commit offsets."""


class WebhookStore:
    """Acknowledged (receiver, event_id) pairs; the dispatcher never sends those again."""

    def __init__(self, database_url: str) -> None:
        self._engine = create_engine(
            database_url,
            pool_size=1,
            max_overflow=1,
            pool_pre_ping=True,
            connect_args={"connect_timeout": 3},
        )

    def delivered(self, receiver: str, event_id: str) -> bool:
        """True when receiver already acknowledged event_id."""
        try:
            with self._engine.connect() as conn:
                row = conn.execute(DELIVERED, {"receiver": receiver, "event_id": event_id})
                return row.first() is not None
        except SQLAlchemyError as error:
            raise DeliveryStoreUnavailable(repr(error)) from error

    def record(self, receiver: str, event_id: str, attempts: int) -> None:
        """Remember that receiver acknowledged event_id after this many attempts."""
        params = {"receiver": receiver, "event_id": event_id, "attempts": attempts}
        try:
            with self._engine.begin() as conn:
                conn.execute(RECORD, params)
        except SQLAlchemyError as error:
            raise DeliveryStoreUnavailable(repr(error)) from error

    def close(self) -> None:
        self._engine.dispose()
