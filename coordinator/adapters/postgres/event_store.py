"""The PostgreSQL event store: one transaction per batch of commands under the row lock.

The one command path, on the event loop over psycopg's async connections (connections.py):
the statements of command_sql.py go in two pipelined round trips plus the commit, and the
batch is decided in between with no database call, since what its commands ask besides the
row (idempotency keys, a cancelled task's last event) is read with the lock (`Lookups`).
Why no thread per batch, and the figures: docs/coalescing.md.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from coordinator.adapters.postgres.command_sql import (
    INSERT_EVENTS,
    INSERT_OUTBOXES,
    NOTIFY,
    REMEMBER_KEYS,
    UPDATE_STREAM,
    LookedUp,
    Write,
    json_rows,
    lock_reads,
    looked_up,
    lookup_reads,
)
from coordinator.adapters.postgres.connections import AsyncConnections
from coordinator.service.ports import NO_LOOKUPS, EventTooLarge, Lookups
from core.database import translated_errors
from core.domain.commands import RequestMeta
from core.domain.events import Envelope, Event, envelope_from_stored, stamp
from core.domain.hash_chain import chain_envelope
from core.domain.user_sync import UserSyncState, fold, stream_id_for
from core.store_errors import ConcurrencyConflict

EVENT_JSON = ("data", "metadata")  # fields of event_rows that hold JSON text already
KEY_JSON = ("response",)
READ_STREAM = (
    "SELECT event_id, event_type, schema_version, version, occurred_at, data, metadata "
    "FROM events WHERE stream_id = %(stream_id)s ORDER BY version"
)
SNAPSHOT = "SELECT version, state FROM streams WHERE stream_id = %(stream_id)s"
LAPSED = (
    "SELECT user_id FROM streams WHERE live_until <= clock_timestamp() "
    "ORDER BY live_until LIMIT %(limit)s"
)


class PostgresLockedStream:
    """A stream row locked FOR UPDATE inside an open transaction.

    `append` only stages: every command of a coalesced batch appends in turn, and `writes`
    gives all their events, outbox rows and idempotency keys for one pipelined round trip.
    What the batch will ask besides the row (`Lookups`) was read with the lock.
    """

    def __init__(
        self,
        user_id: str,
        row: tuple[Any, ...],
        max_event_bytes: int,
        looked_up: LookedUp | None = None,
    ) -> None:
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
        assert task_id in self._looked_up.tasks, "a task is read with the lock (Lookups)"
        return self._looked_up.tasks[task_id]

    def recall_response(self, key: str) -> tuple[str, dict[str, Any]] | None:
        if key in self._keys:
            return self._keys[key]
        assert key in self._looked_up.keys, "a key is read with the lock (Lookups)"
        return self._looked_up.keys[key]

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
    """`lock_stream` as an async context manager over up to `size` kept connections."""

    def __init__(
        self, url: str, size: int, lock_timeout_ms: int = 3000, max_event_bytes: int = 262_144
    ) -> None:
        self._pool = AsyncConnections(url, size, f"{int(lock_timeout_ms)}ms")
        self._max_event_bytes = max_event_bytes

    async def close(self) -> None:
        await self._pool.close()

    @asynccontextmanager
    async def lock_stream(
        self, user_id: str, lookups: Lookups = NO_LOOKUPS
    ) -> AsyncIterator[PostgresLockedStream]:
        with translated_errors():
            async with self._pool.connection() as conn, conn.cursor() as cursor:
                reads = lookup_reads(user_id, lookups)
                readers = [conn.cursor() for _ in reads]
                async with conn.pipeline():
                    for write in lock_reads(user_id, lock_timeout=None):
                        await cursor.execute(write.sql, write.params)
                    for read, reader in zip(reads, readers, strict=True):
                        await reader.execute(read.sql, read.params)
                row = await cursor.fetchone()
                assert row is not None, "the stream row was just created"
                found = looked_up(lookups, [await reader.fetchall() for reader in readers])
                stream = PostgresLockedStream(user_id, row, self._max_event_bytes, found)
                yield stream
                writes = stream.writes()
                if writes:
                    async with conn.pipeline():
                        for write in writes:
                            await cursor.execute(write.sql, write.params)
                    if stream.moves:
                        stream.check_moved(await cursor.fetchone())
                await conn.commit()

    async def read_stream(self, user_id: str) -> list[Envelope]:
        stream_id = stream_id_for(user_id)
        rows = await self._read(READ_STREAM, {"stream_id": stream_id})
        return [
            envelope_from_stored(
                event_id=str(event_id),
                event_type=event_type,
                schema_version=schema_version,
                stream_id=stream_id,
                version=version,
                occurred_at=occurred_at,
                data=data,
                metadata=metadata,
            )
            for event_id, event_type, schema_version, version, occurred_at, data, metadata in rows
        ]

    async def snapshot(self, user_id: str) -> tuple[int, UserSyncState]:
        """The stream row's version and state snapshot, without locking."""
        rows = await self._read(SNAPSHOT, {"stream_id": stream_id_for(user_id)})
        if not rows:
            return 0, UserSyncState()
        version, state = rows[0]
        return int(version), UserSyncState.from_json(state) if state else UserSyncState()

    async def users_with_lapsed_leases(self, limit: int) -> list[str]:
        """Users whose running task's lease has run out, by the database clock."""
        return [str(user) for (user,) in await self._read(LAPSED, {"limit": limit})]

    async def _read(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        with translated_errors():
            async with self._pool.connection() as conn, conn.cursor() as cursor:
                await cursor.execute(sql, params)
                rows = await cursor.fetchall()
                await conn.commit()
        return rows
