"""In-memory fan-out of status rows to this process's open streams, a bounded number per user.

The listener thread says which users' rows changed; the hub reads the rows of those with
an open stream here (one query for all of them) and offers each to its user's streams on
the event loop. A stream keeps only the newest row it has not sent: a slow reader skips
intermediate versions instead of queueing them.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("coordinator.api.status_hub")
Row = dict[str, Any]


class TooManyStreams(Exception):
    """The user already has the most open streams this process allows."""


class HubClosed(Exception):
    """The API is stopping: the stream ends."""


class Subscription:
    """One open stream: the newest unsent row of its user, and a wake-up."""

    def __init__(self, user_id: str, after_version: int = -1) -> None:
        self.user_id = user_id
        self.sent_version = after_version
        self._pending: Row | None = None
        self._wake = asyncio.Event()
        self._closed = False

    def offer(self, row: Row) -> None:
        """Keep the row if it is newer than anything sent or pending (loop thread only)."""
        newest = self._pending["last_version"] if self._pending else self.sent_version
        if int(row["last_version"]) > newest:
            self._pending = row
            self._wake.set()

    def close(self) -> None:
        self._closed = True
        self._wake.set()

    async def next_row(self, timeout: float) -> Row | None:
        """The next newer row, or None after `timeout` without one; HubClosed when stopping."""
        if self._pending is None and not self._closed:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                return None
        self._wake.clear()
        if self._closed:
            raise HubClosed
        row, self._pending = self._pending, None
        if row is not None:
            self.sent_version = int(row["last_version"])
        return row


class StatusHub:
    """Subscriptions per user; rows read once per notice and offered to every stream."""

    def __init__(self, max_per_user: int) -> None:
        self._read_rows: Callable[[list[str]], list[Row]] = lambda user_ids: []
        self._max_per_user = max_per_user
        self._by_user: dict[str, set[Subscription]] = {}
        self._lock = threading.Lock()  # _by_user's keys are read on the listener thread
        self._loop: asyncio.AbstractEventLoop | None = None
        self._missed: set[str] = set()
        self._closed = False

    def bind(
        self, loop: asyncio.AbstractEventLoop, read_rows: Callable[[list[str]], list[Row]]
    ) -> None:
        """The event loop the streams run on and how rows are read; once the app starts."""
        self._loop, self._read_rows = loop, read_rows

    def subscribe(self, user_id: str, after_version: int = -1) -> Subscription:
        """A new stream of this user's rows newer than `after_version`; TooManyStreams
        beyond the bound."""
        if self._closed:
            raise HubClosed
        with self._lock:
            streams = self._by_user.setdefault(user_id, set())
            if len(streams) >= self._max_per_user:
                raise TooManyStreams(
                    f"this user already has {len(streams)} open status streams, the most "
                    f"one API process allows (SYNC_STREAM_MAX_PER_USER); close one first"
                )
            subscription = Subscription(user_id, after_version)
            streams.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            streams = self._by_user.get(subscription.user_id, set())
            streams.discard(subscription)
            if not streams:
                self._by_user.pop(subscription.user_id, None)

    def open_streams(self, user_id: str) -> int:
        with self._lock:
            return len(self._by_user.get(user_id, ()))

    def changed(self, user_ids: set[str] | None) -> None:
        """Listener thread: read the rows of these users that have a stream here, then offer
        them on the loop. None: every user with a stream. A failed read is retried next call."""
        with self._lock:
            watched = set(self._by_user)
        wanted = watched if user_ids is None else (user_ids | self._missed) & watched
        if not wanted or self._loop is None:
            return
        try:
            rows = self._read_rows(sorted(wanted))
        except Exception as error:
            log.warning("cannot read status rows for the streams (%r); retrying", error)
            self._missed = wanted
            return
        self._missed = set()
        self._loop.call_soon_threadsafe(self._offer, rows)

    def _offer(self, rows: list[Row]) -> None:
        for row in rows:
            for subscription in list(self._by_user.get(row["user_id"], ())):
                subscription.offer(row)

    def close(self) -> None:
        """End every stream (loop thread); new ones are refused."""
        self._closed = True
        with self._lock:
            streams = [s for subs in self._by_user.values() for s in subs]
        for subscription in streams:
            subscription.close()

    def close_soon(self) -> None:
        """close() from any thread, e.g. a signal handler."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.close)
