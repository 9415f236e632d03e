"""The PostgreSQL event store: one transaction per command under the stream's row lock."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from sqlalchemy import Engine, text

from coordinator.adapters.postgres.engine import translated_errors
from coordinator.domain.commands import RequestMeta
from coordinator.domain.events import Envelope, Event, envelope_from_stored, stamp
from coordinator.domain.hash_chain import chain_envelope
from coordinator.domain.user_sync import UserSyncState, fold, stream_id_for
from coordinator.service.ports import ConcurrencyConflict, EventTooLarge

OUTBOX_CHANNEL = "sync_outbox"
SET_LOCK_TIMEOUT = "SELECT set_config('lock_timeout', %(value)s, true)"

# The command path runs its statements on the pooled connection's psycopg cursor:
# SQLAlchemy's per-statement work was a sixth of the API's CPU per start command.

# The row may not exist yet and FOR UPDATE locks nothing that is absent, so it is
# created first; ON CONFLICT keeps concurrent first starts from failing.
CREATE_STREAM = (
    "INSERT INTO streams (stream_id, user_id) VALUES (%(stream_id)s, %(user_id)s) "
    "ON CONFLICT DO NOTHING"
)
# clock_timestamp(), not now(): now() is the transaction's start, before the lock wait.
LOCK_STREAM = (
    "SELECT version, state, last_hash, clock_timestamp() AS now FROM streams "
    "WHERE stream_id = %(stream_id)s FOR UPDATE"
)
EVENT_COLUMNS = (
    "event_id",
    "stream_id",
    "version",
    "event_type",
    "schema_version",
    "occurred_at",
    "data",
    "metadata",
    "prev_hash",
    "hash",
)
INSERT_EVENT = (
    "INSERT INTO events (event_id, stream_id, version, event_type, schema_version, "
    "occurred_at, data, metadata, prev_hash, hash) VALUES (%(event_id)s, %(stream_id)s, "
    "%(version)s, %(event_type)s, %(schema_version)s, %(occurred_at)s, CAST(%(data)s AS jsonb), "
    "CAST(%(metadata)s AS jsonb), %(prev_hash)s, %(hash)s)"
)
UPDATE_STREAM = (
    "UPDATE streams SET version = %(version)s, state = CAST(%(state)s AS jsonb), "
    "updated_at = %(now)s, live_until = %(live_until)s, last_hash = %(last_hash)s "
    "WHERE stream_id = %(stream_id)s AND version = %(expected)s RETURNING version"
)
INSERT_OUTBOX = (
    "INSERT INTO outbox (event_id, user_id, payload) VALUES "
    "(%(event_id)s, %(user_id)s, CAST(%(payload)s AS jsonb))"
)
NOTIFY = f"SELECT pg_notify('{OUTBOX_CHANNEL}', '')"
RECALL = (
    "SELECT fingerprint, response FROM idempotency_keys "
    "WHERE user_id = %(user_id)s AND key = %(key)s"
)
REMEMBER = (
    "INSERT INTO idempotency_keys (user_id, key, fingerprint, response) "
    "VALUES (%(user_id)s, %(key)s, %(fingerprint)s, CAST(%(response)s AS jsonb))"
)
# Scans the user's own events (by the stream's key): only a cancel of an older task asks.
LAST_EVENT_OF_TASK = (
    "SELECT event_type FROM events WHERE stream_id = %(stream_id)s "
    "AND data->>'task_id' = %(task_id)s ORDER BY version DESC LIMIT 1"
)
READ_STREAM = text(
    "SELECT event_id, event_type, schema_version, version, occurred_at, data, metadata "
    "FROM events WHERE stream_id = :stream_id ORDER BY version"
)


class PostgresLockedStream:
    """A stream row locked FOR UPDATE inside an open transaction.

    `append` only stages: every command of a coalesced batch appends in turn, and `flush`
    writes all their events, outbox rows and idempotency keys in one pipelined round trip.
    """

    def __init__(
        self,
        cursor: psycopg.Cursor[Any],
        user_id: str,
        lock_timeout: str,
        max_event_bytes: int,
    ) -> None:
        self._cursor = cursor
        self._max_event_bytes = max_event_bytes
        self.user_id = user_id
        self.stream_id = stream_id_for(user_id)
        with cursor.connection.pipeline():
            cursor.execute(SET_LOCK_TIMEOUT, {"value": lock_timeout})
            cursor.execute(CREATE_STREAM, {"stream_id": self.stream_id, "user_id": user_id})
            cursor.execute(LOCK_STREAM, {"stream_id": self.stream_id})
        row = cursor.fetchone()
        assert row is not None, "the stream row was just created"
        version, state, self._last_hash, self.now = row
        self.version: int = version
        self._locked_version: int = version
        self.state = UserSyncState.from_json(state) if state else UserSyncState()
        self._events: list[dict[str, Any]] = []
        self._outbox: list[dict[str, Any]] = []
        self._keys: dict[str, tuple[str, dict[str, Any]]] = {}
        self._staged_tasks: dict[str, str] = {}  # task id -> type of its last staged event

    def append(self, events: Sequence[Event], meta: RequestMeta) -> list[Envelope]:
        envelopes = stamp(
            list(events),
            stream_id=self.stream_id,
            user_id=self.user_id,
            after_version=self.version,
            now=self.now,
            correlation_id=meta.correlation_id,
            causation_id=meta.command_id,
            traceparent=meta.traceparent,
        )
        payloads = EventTooLarge.encoded(envelopes, self._max_event_bytes)
        rows = event_rows(envelopes, self._last_hash)
        self._events += rows
        self._outbox += [
            {"event_id": e.event_id, "user_id": e.user_id, "payload": payload}
            for e, payload in zip(envelopes, payloads, strict=True)
        ]
        self.version, self.state = envelopes[-1].version, fold(events, self.state)
        self._staged_tasks.update((e.task_id, e.event_type) for e in events)
        self._last_hash = rows[-1]["hash"]
        return envelopes

    def last_event_type(self, task_id: str) -> str | None:
        if task_id in self._staged_tasks:
            return self._staged_tasks[task_id]
        params = {"stream_id": self.stream_id, "task_id": task_id}
        row = self._cursor.execute(LAST_EVENT_OF_TASK, params).fetchone()
        return None if row is None else str(row[0])

    def recall_response(self, key: str) -> tuple[str, dict[str, Any]] | None:
        if key in self._keys:
            return self._keys[key]
        row = self._cursor.execute(RECALL, {"user_id": self.user_id, "key": key}).fetchone()
        return None if row is None else (row[0], row[1])

    def remember_response(self, key: str, fingerprint: str, response: dict[str, Any]) -> None:
        self._keys[key] = (fingerprint, response)

    def flush(self) -> None:
        """Write everything staged in one round trip; a stale version is a conflict."""
        if not self._events and not self._keys:
            return
        cursor = self._cursor
        # One round trip for all writes: every wake-up under the row lock may wait for the
        # GIL, and that wait is paid by every queued click of the same user.
        with cursor.connection.pipeline():
            if self._keys:
                cursor.executemany(REMEMBER, self._key_rows())
            if self._events:
                cursor.executemany(INSERT_EVENT, self._events)
                cursor.executemany(INSERT_OUTBOX, self._outbox)
                cursor.execute(NOTIFY)
                # Last, so that its row is what the cursor holds once the pipeline syncs.
                cursor.execute(UPDATE_STREAM, self._stream_row())
        # A stale expected version also collides on (stream_id, version) above; either way
        # it is a conflict and the transaction rolls back.
        if self._events and cursor.fetchone() is None:
            raise ConcurrencyConflict(
                f"{self.stream_id} is no longer at version {self._locked_version}"
            )

    def _key_rows(self) -> list[dict[str, Any]]:
        return [
            {
                "user_id": self.user_id,
                "key": key,
                "fingerprint": fingerprint,
                "response": json.dumps(response),
            }
            for key, (fingerprint, response) in self._keys.items()
        ]

    def _stream_row(self) -> dict[str, Any]:
        return {
            "stream_id": self.stream_id,
            "version": self.version,
            "state": json.dumps(self.state.to_json()),
            "now": self.now,
            "live_until": self.state.lease_expires_at if self.state.status == "running" else None,
            "last_hash": self._last_hash,
            "expected": self._locked_version,
        }


def event_rows(envelopes: Sequence[Envelope], last_hash: str) -> list[dict[str, Any]]:
    """Rows of INSERT_EVENT (keys: EVENT_COLUMNS), each chained to the hash of the one before."""
    rows = []
    previous = last_hash
    for envelope in envelopes:
        chained = chain_envelope(previous, envelope)
        rows.append(
            {
                "event_id": envelope.event_id,
                "stream_id": envelope.stream_id,
                "version": envelope.version,
                "event_type": envelope.event_type,
                "schema_version": envelope.schema_version,
                "occurred_at": envelope.occurred_at,
                "data": json.dumps(chained.data),
                "metadata": json.dumps(chained.metadata),
                "prev_hash": chained.prev_hash,
                "hash": chained.hash,
            }
        )
        previous = chained.hash
    return rows


class PostgresEventStore:
    """Event store over an SQLAlchemy engine; see the module docstring."""

    def __init__(
        self, engine: Engine, lock_timeout_ms: int = 3000, max_event_bytes: int = 262_144
    ) -> None:
        self._engine = engine
        self._lock_timeout = f"{int(lock_timeout_ms)}ms"
        self._max_event_bytes = max_event_bytes

    @contextmanager
    def lock_stream(self, user_id: str) -> Iterator[PostgresLockedStream]:
        with translated_errors(), self._engine.begin() as conn:
            driver = conn.connection.driver_connection
            assert isinstance(driver, psycopg.Connection)
            with driver.cursor() as cursor:
                stream = PostgresLockedStream(
                    cursor, user_id, self._lock_timeout, self._max_event_bytes
                )
                yield stream
                stream.flush()

    def read_stream(self, user_id: str) -> list[Envelope]:
        stream_id = stream_id_for(user_id)
        with translated_errors(), self._engine.connect() as conn:
            rows = conn.execute(READ_STREAM, {"stream_id": stream_id}).all()
        return [
            envelope_from_stored(
                event_id=row.event_id,
                event_type=row.event_type,
                schema_version=row.schema_version,
                stream_id=stream_id,
                version=row.version,
                occurred_at=row.occurred_at,
                data=row.data,
                metadata=row.metadata,
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
