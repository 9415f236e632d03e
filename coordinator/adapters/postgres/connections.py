"""The event store's connections: psycopg's async connections, kept between transactions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus

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
