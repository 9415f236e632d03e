"""The PostgreSQL event store: one transaction per batch of commands under the row lock."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from sqlalchemy import Engine, text

from coordinator.adapters.postgres.command_sql import (
    INSERT_EVENTS,
    INSERT_OUTBOXES,
    LAST_EVENT_OF_TASK,
    NOTIFY,
    RECALL,
    REMEMBER_KEYS,
    UPDATE_STREAM,
    LookedUp,
    Write,
    json_rows,
    lock_reads,
    looked_up,
    lookup_reads,
)
from coordinator.service.ports import NO_LOOKUPS, EventTooLarge, Lookups
from core.database import translated_errors
from core.domain.commands import RequestMeta
from core.domain.events import Envelope, Event, envelope_from_stored, stamp
from core.domain.hash_chain import chain_envelope
from core.domain.user_sync import UserSyncState, fold, stream_id_for
from core.store_errors import ConcurrencyConflict

EVENT_JSON = ("data", "metadata")  # fields of event_rows that hold JSON text already
KEY_JSON = ("response",)
READ_STREAM = text(
    "SELECT event_id, event_type, schema_version, version, occurred_at, data, metadata "
    "FROM events WHERE stream_id = :stream_id ORDER BY version"
)


class PostgresLockedStream:
    """A stream row locked FOR UPDATE inside an open transaction.

    `append` only stages: every command of a coalesced batch appends in turn, and `writes`
    gives all their events, outbox rows and idempotency keys for one pipelined round trip.
    What the batch will ask besides the row (`Lookups`) was read with the lock; anything
    else is read on demand through `cursor`, which only the sync path has.
    """

    def __init__(
        self,
        user_id: str,
        row: tuple[Any, ...],
        max_event_bytes: int,
        looked_up: LookedUp | None = None,
        cursor: psycopg.Cursor[Any] | None = None,
    ) -> None:
        self._cursor = cursor
        self._max_event_bytes = max_event_bytes
        self.user_id = user_id
        self.stream_id = stream_id_for(user_id)
        version, state, self._last_hash, self.now = row
        self.version: int = version
        self._locked_version: int = version
        self.state = UserSyncState.from_json(state) if state else UserSyncState()
        self._looked_up = looked_up or LookedUp()
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
        if task_id in self._looked_up.tasks:
            return self._looked_up.tasks[task_id]
        params = {"stream_id": self.stream_id, "task_id": task_id}
        row = self._on_demand().execute(LAST_EVENT_OF_TASK, params).fetchone()
        return None if row is None else str(row[0])

    def recall_response(self, key: str) -> tuple[str, dict[str, Any]] | None:
        if key in self._keys:
            return self._keys[key]
        if key in self._looked_up.keys:
            return self._looked_up.keys[key]
        params = {"user_id": self.user_id, "key": key}
        row = self._on_demand().execute(RECALL, params).fetchone()
        return None if row is None else (row[0], row[1])

    def remember_response(self, key: str, fingerprint: str, response: dict[str, Any]) -> None:
        self._keys[key] = (fingerprint, response)

    def writes(self) -> list[Write]:
        """Everything staged, in order; the last statement returns the stream's row."""
        writes: list[Write] = []
        if self._keys:
            writes.append(Write(REMEMBER_KEYS, {"rows": json_rows(self._key_rows(), KEY_JSON)}))
        if self._events:
            writes.append(Write(INSERT_EVENTS, {"rows": json_rows(self._events, EVENT_JSON)}))
            writes.append(Write(INSERT_OUTBOXES, {"rows": json_rows(self._outbox, ("payload",))}))
            writes.append(Write(NOTIFY, {}))
            # Last, so that its row is what the cursor holds once the pipeline syncs.
            writes.append(Write(UPDATE_STREAM, self._stream_row()))
        return writes

    @property
    def moves(self) -> bool:
        """Whether `writes` moves the stream on, its last statement returning the row."""
        return bool(self._events)

    def check_moved(self, returned: object) -> None:
        """Raise ConcurrencyConflict if the snapshot's update found the row moved on."""
        # A stale expected version also collides on (stream_id, version) in the inserts;
        # either way it is a conflict and the transaction rolls back.
        if returned is None:
            raise ConcurrencyConflict(
                f"{self.stream_id} is no longer at version {self._locked_version}"
            )

    def flush(self) -> None:
        """Write everything staged in one round trip; a stale version is a conflict."""
        writes = self.writes()
        if not writes:
            return
        cursor = self._on_demand()
        # One round trip for all writes: every wake-up under the row lock may wait for the
        # GIL, and that wait is paid by every queued click of the same user.
        with cursor.connection.pipeline():
            for write in writes:
                cursor.execute(write.sql, write.params)
        if self.moves:
            self.check_moved(cursor.fetchone())

    def _on_demand(self) -> psycopg.Cursor[Any]:
        assert self._cursor is not None, "read this with the lock (Lookups) on the async path"
        return self._cursor

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
    def lock_stream(
        self, user_id: str, lookups: Lookups = NO_LOOKUPS
    ) -> Iterator[PostgresLockedStream]:
        with translated_errors(), self._engine.begin() as conn:
            driver = conn.connection.driver_connection
            assert isinstance(driver, psycopg.Connection)
            with driver.cursor() as cursor:
                reads = lookup_reads(user_id, lookups)
                readers = [driver.cursor() for _ in reads]
                with driver.pipeline():
                    for write in lock_reads(user_id, self._lock_timeout):
                        cursor.execute(write.sql, write.params)
                    for read, reader in zip(reads, readers, strict=True):
                        reader.execute(read.sql, read.params)
                row = cursor.fetchone()
                assert row is not None, "the stream row was just created"
                found = looked_up(lookups, [reader.fetchall() for reader in readers])
                stream = PostgresLockedStream(user_id, row, self._max_event_bytes, found, cursor)
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
