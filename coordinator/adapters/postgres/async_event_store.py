"""The command path on the event loop: psycopg's async connections, no thread per batch.

The API's coalescer ran each batch on a thread of its own, and every batch paid for the
hand-over: waking the thread, the GIL passed back and forth at each round trip (while the
row lock is held), and waking the loop with the answer. Here the same statements
(command_sql.py) run in the same two pipelined round trips plus the commit, awaited on the
loop, and the batch is decided in between with no database call: what its commands ask
besides the row (idempotency keys, a cancelled task's last event) is read with the lock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus

from coordinator.adapters.postgres.command_sql import lock_reads, looked_up, lookup_reads
from coordinator.adapters.postgres.event_store import PostgresLockedStream
from coordinator.service.ports import Lookups
from core.database import translated_errors

CONNECT_TIMEOUT_SECONDS = 3  # as the engine's: a database that does not answer is a 503
APPLICATION_NAME = "sync-commands"  # how pg_stat_activity shows these connections


class AsyncConnections:
    """At most `size` idle connections kept; a new one is made when none is idle.

    Not psycopg_pool: it retries a failed connect in the background and makes the caller
    wait its whole timeout, where a database that refuses connections must be a 503 at once.
    The coalescer bounds the transactions in flight, and so the connections in use.
    """

    def __init__(self, url: str, size: int, lock_timeout: str) -> None:
        self._url, self._size, self._lock_timeout = url, size, lock_timeout
        self._idle: list[AsyncConnection[tuple[object, ...]]] = []

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection[tuple[object, ...]]]:
        conn = self._idle.pop() if self._idle else await self._connect()
        try:
            yield conn
        except BaseException:
            await self._put_back(conn, rollback=True)
            raise
        await self._put_back(conn, rollback=False)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close()

    async def _connect(self) -> AsyncConnection[tuple[object, ...]]:
        # The lock timeout is the session's: no statement per transaction to set it.
        return await AsyncConnection.connect(
            self._url,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            application_name=APPLICATION_NAME,
            options=f"-c lock_timeout={self._lock_timeout}",
        )

    async def _put_back(self, conn: AsyncConnection[tuple[object, ...]], rollback: bool) -> None:
        """Keep a healthy, idle connection; close a broken one or one too many."""
        try:
            if rollback and not conn.closed:
                await conn.rollback()
        except psycopg.Error:
            pass  # broken: closed below
        idle = conn.info.transaction_status == TransactionStatus.IDLE
        if conn.closed or conn.broken or not idle or len(self._idle) >= self._size:
            await conn.close()
        else:
            self._idle.append(conn)


class AsyncPostgresEventStore:
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
        self, user_id: str, lookups: Lookups
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
