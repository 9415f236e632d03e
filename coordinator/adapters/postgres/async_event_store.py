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

from psycopg_pool import AsyncConnectionPool

from coordinator.adapters.postgres.command_sql import lock_reads, looked_up, lookup_reads
from coordinator.adapters.postgres.engine import translated_errors
from coordinator.adapters.postgres.event_store import PostgresLockedStream
from coordinator.service.ports import Lookups

CONNECT_TIMEOUT_SECONDS = 3  # as the engine's: a database that does not answer is a 503
POOL_TIMEOUT_SECONDS = 5


class AsyncPostgresEventStore:
    """`lock_stream` as an async context manager over a pool of `size` connections."""

    def __init__(
        self, url: str, size: int, lock_timeout_ms: int = 3000, max_event_bytes: int = 262_144
    ) -> None:
        self._pool = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=size,
            timeout=POOL_TIMEOUT_SECONDS,
            kwargs={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
            open=False,
        )
        self._lock_timeout = f"{int(lock_timeout_ms)}ms"
        self._max_event_bytes = max_event_bytes

    async def open(self) -> None:
        """Start the pool; connections are made in the background, a dead database is not
        an error here (each command then answers 503 until it is back)."""
        await self._pool.open(wait=False)

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
                    for write in lock_reads(user_id, self._lock_timeout):
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
                            if write.many:
                                await cursor.executemany(write.sql, write.params)
                            else:
                                await cursor.execute(write.sql, write.params)
                    if stream.moves:
                        stream.check_moved(await cursor.fetchone())
                await conn.commit()
