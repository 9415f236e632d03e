"""The PostgreSQL event store: one transaction per command under the stream's row lock."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, text

from coordinator.adapters.postgres.engine import translated_errors
from coordinator.domain.commands import RequestMeta
from coordinator.domain.events import Envelope, Event, data_to_json, envelope_from_json, stamp
from coordinator.domain.hash_chain import chain_hash
from coordinator.domain.user_sync import UserSyncState, fold
from coordinator.service.ports import ConcurrencyConflict

OUTBOX_CHANNEL = "sync_outbox"

# The row may not exist yet and FOR UPDATE locks nothing that is absent, so it is
# created first; ON CONFLICT keeps concurrent first starts from failing.
CREATE_STREAM = text(
    "INSERT INTO streams (stream_id, user_id) VALUES (:stream_id, :user_id) ON CONFLICT DO NOTHING"
)
# clock_timestamp(), not now(): now() is the transaction's start, before the lock wait.
LOCK_STREAM = text(
    "SELECT version, state, last_hash, clock_timestamp() AS now FROM streams "
    "WHERE stream_id = :stream_id FOR UPDATE"
)
INSERT_EVENT = text(
    "INSERT INTO events (event_id, stream_id, version, event_type, schema_version, "
    "occurred_at, data, metadata, prev_hash, hash) VALUES (:event_id, :stream_id, :version, "
    ":event_type, :schema_version, :occurred_at, CAST(:data AS jsonb), "
    "CAST(:metadata AS jsonb), :prev_hash, :hash)"
)
UPDATE_STREAM = text(
    "UPDATE streams SET version = :version, state = CAST(:state AS jsonb), updated_at = :now, "
    "live_until = :live_until, last_hash = :last_hash "
    "WHERE stream_id = :stream_id AND version = :expected"
)
INSERT_OUTBOX = text(
    "INSERT INTO outbox (event_id, user_id, payload) VALUES "
    "(:event_id, :user_id, CAST(:payload AS jsonb))"
)
NOTIFY = text(f"SELECT pg_notify('{OUTBOX_CHANNEL}', '')")
RECALL = text(
    "SELECT fingerprint, response FROM idempotency_keys WHERE user_id = :user_id AND key = :key"
)
REMEMBER = text(
    "INSERT INTO idempotency_keys (user_id, key, fingerprint, response) "
    "VALUES (:user_id, :key, :fingerprint, CAST(:response AS jsonb))"
)
READ_STREAM = text(
    "SELECT event_id, event_type, schema_version, version, occurred_at, data, metadata "
    "FROM events WHERE stream_id = :stream_id ORDER BY version"
)


def stream_id_for(user_id: str) -> str:
    """Each user has exactly one UserSync stream."""
    return f"UserSync-{user_id}"


class PostgresLockedStream:
    """A stream row locked FOR UPDATE inside an open transaction."""

    def __init__(self, conn: Connection, user_id: str, row: Any) -> None:
        self._conn = conn
        self.user_id = user_id
        self.stream_id = stream_id_for(user_id)
        self.version: int = row.version
        self.state = UserSyncState.from_json(row.state) if row.state else UserSyncState()
        self.now: datetime = row.now
        self._last_hash: str = row.last_hash

    def append(self, events: Sequence[Event], meta: RequestMeta) -> list[Envelope]:
        envelopes = stamp(
            list(events),
            stream_id=self.stream_id,
            user_id=self.user_id,
            after_version=self.version,
            now=self.now,
            correlation_id=meta.correlation_id,
            causation_id=meta.command_id,
        )
        new_state = fold(events, self.state)
        rows = _event_rows(envelopes, self._last_hash)
        updated = self._conn.execute(
            UPDATE_STREAM,
            {
                "stream_id": self.stream_id,
                "version": envelopes[-1].version,
                "state": json.dumps(new_state.to_json()),
                "now": self.now,
                "live_until": new_state.lease_expires_at if new_state.status == "running" else None,
                "last_hash": rows[-1]["hash"],
                "expected": self.version,
            },
        )
        if updated.rowcount != 1:
            raise ConcurrencyConflict(f"{self.stream_id} is no longer at version {self.version}")
        self._conn.execute(INSERT_EVENT, rows)
        self._conn.execute(
            INSERT_OUTBOX,
            [
                {"event_id": e.event_id, "user_id": e.user_id, "payload": json.dumps(e.to_json())}
                for e in envelopes
            ],
        )
        self._conn.execute(NOTIFY)
        self.version, self.state = envelopes[-1].version, new_state
        self._last_hash = rows[-1]["hash"]
        return envelopes

    def recall_response(self, key: str) -> tuple[str, dict[str, Any]] | None:
        row = self._conn.execute(RECALL, {"user_id": self.user_id, "key": key}).one_or_none()
        return None if row is None else (row.fingerprint, row.response)

    def remember_response(self, key: str, fingerprint: str, response: dict[str, Any]) -> None:
        self._conn.execute(
            REMEMBER,
            {
                "user_id": self.user_id,
                "key": key,
                "fingerprint": fingerprint,
                "response": json.dumps(response),
            },
        )


def _event_rows(envelopes: list[Envelope], last_hash: str) -> list[dict[str, Any]]:
    """Rows to insert, each chained to the hash of the one before it."""
    rows = []
    previous = last_hash
    for envelope in envelopes:
        data = data_to_json(envelope.data)
        metadata = {
            "user_id": envelope.user_id,
            "correlation_id": envelope.correlation_id,
            "causation_id": envelope.causation_id,
        }
        digest = chain_hash(
            previous,
            event_id=envelope.event_id,
            stream_id=envelope.stream_id,
            version=envelope.version,
            event_type=envelope.event_type,
            schema_version=envelope.schema_version,
            occurred_at=envelope.occurred_at,
            data=data,
            metadata=metadata,
        )
        rows.append(
            {
                "event_id": envelope.event_id,
                "stream_id": envelope.stream_id,
                "version": envelope.version,
                "event_type": envelope.event_type,
                "schema_version": envelope.schema_version,
                "occurred_at": envelope.occurred_at,
                "data": json.dumps(data),
                "metadata": json.dumps(metadata),
                "prev_hash": previous,
                "hash": digest,
            }
        )
        previous = digest
    return rows


class PostgresEventStore:
    """Event store over an SQLAlchemy engine; see the module docstring."""

    def __init__(self, engine: Engine, lock_timeout_ms: int = 3000) -> None:
        self._engine = engine
        self._lock_timeout = f"{int(lock_timeout_ms)}ms"

    @contextmanager
    def lock_stream(self, user_id: str) -> Iterator[PostgresLockedStream]:
        with translated_errors(), self._engine.begin() as conn:
            conn.execute(
                text("SELECT set_config('lock_timeout', :value, true)"),
                {"value": self._lock_timeout},
            )
            stream_id = stream_id_for(user_id)
            conn.execute(CREATE_STREAM, {"stream_id": stream_id, "user_id": user_id})
            row = conn.execute(LOCK_STREAM, {"stream_id": stream_id}).one()
            yield PostgresLockedStream(conn, user_id, row)

    def read_stream(self, user_id: str) -> list[Envelope]:
        stream_id = stream_id_for(user_id)
        with translated_errors(), self._engine.connect() as conn:
            rows = conn.execute(READ_STREAM, {"stream_id": stream_id}).all()
        return [
            envelope_from_json(
                {
                    "event_id": str(row.event_id),
                    "event_type": row.event_type,
                    "schema_version": row.schema_version,
                    "stream_id": stream_id,
                    "user_id": row.metadata["user_id"],
                    "version": row.version,
                    "occurred_at": row.occurred_at.isoformat(),
                    "correlation_id": row.metadata["correlation_id"],
                    "causation_id": row.metadata["causation_id"],
                    "data": row.data,
                }
            )
            for row in rows
        ]

    def users_with_lapsed_leases(self, limit: int) -> list[str]:
        """Users whose running task's lease has run out, by the database clock."""
        with translated_errors(), self._engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT user_id FROM streams WHERE live_until <= clock_timestamp() "
                    "ORDER BY live_until LIMIT :limit"
                ),
                {"limit": limit},
            ).all()
        return [row.user_id for row in rows]

    def snapshot(self, user_id: str) -> tuple[int, UserSyncState]:
        """The stream row's version and state snapshot, without locking."""
        with translated_errors(), self._engine.connect() as conn:
            row = conn.execute(
                text("SELECT version, state FROM streams WHERE stream_id = :s"),
                {"s": stream_id_for(user_id)},
            ).one_or_none()
        if row is None:
            return 0, UserSyncState()
        return row.version, UserSyncState.from_json(row.state) if row.state else UserSyncState()
