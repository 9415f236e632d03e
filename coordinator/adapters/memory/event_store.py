"""The event store in memory, under the same contract as PostgreSQL's (tests/contract).

An asyncio lock per stream stands for the row lock, a clock you can set stands for the database's,
and a transaction's events, idempotency keys and snapshot are applied together on a clean
exit and dropped on an exception. Handler rules are tested against it in milliseconds;
the contract suite runs the same tests against both stores.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from coordinator.service.ports import NO_LOOKUPS, EventTooLarge, Lookups
from core.domain.commands import RequestMeta
from core.domain.events import Envelope, Event, stamp
from core.domain.hash_chain import GENESIS, chain_envelope
from core.domain.user_sync import UserSyncState, fold, stream_id_for
from core.store_errors import ConcurrencyConflict

Keys = dict[tuple[str, str], tuple[str, dict[str, Any]]]  # (user, key) -> fingerprint, answer


@dataclass
class StoredStream:
    """What the streams row and the events table hold for one stream."""

    user_id: str
    version: int = 0
    state: UserSyncState = field(default_factory=UserSyncState)
    last_hash: str = GENESIS
    events: list[Envelope] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class MemoryLockedStream:
    """A stream held under its lock; `append` stages until the transaction ends."""

    def __init__(
        self, user_id: str, stored: StoredStream, keys: Keys, now: datetime, max_bytes: int
    ) -> None:
        self.user_id, self.stream_id = user_id, stream_id_for(user_id)
        self.version, self.state, self.now = stored.version, stored.state, now
        self.locked_version = stored.version
        self.staged: list[Envelope] = []
        self.staged_keys: Keys = {}
        self.last_hash = stored.last_hash
        self._stored, self._keys, self._max_bytes = stored, keys, max_bytes

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
        EventTooLarge.encoded(envelopes, self._max_bytes)
        for envelope in envelopes:
            self.last_hash = chain_envelope(self.last_hash, envelope).hash
        self.staged += envelopes
        self.version, self.state = envelopes[-1].version, fold(events, self.state)
        return envelopes

    def last_event_type(self, task_id: str) -> str | None:
        for envelope in reversed(self._stored.events + self.staged):
            if envelope.data.task_id == task_id:
                return envelope.event_type
        return None

    def recall_response(self, key: str) -> tuple[str, dict[str, Any]] | None:
        return self.staged_keys.get((self.user_id, key)) or self._keys.get((self.user_id, key))

    def remember_response(self, key: str, fingerprint: str, response: dict[str, Any]) -> None:
        self.staged_keys[(self.user_id, key)] = (fingerprint, response)


class MemoryEventStore:
    """Streams in a dict; `clock` is the database clock (settable in tests)."""

    def __init__(
        self,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_event_bytes: int = 262_144,
    ) -> None:
        self.clock = clock
        self._max_event_bytes = max_event_bytes
        self._streams: dict[str, StoredStream] = {}
        self._keys: Keys = {}

    @asynccontextmanager
    async def lock_stream(
        self, user_id: str, lookups: Lookups = NO_LOOKUPS
    ) -> AsyncIterator[MemoryLockedStream]:
        """The stream under its lock; `lookups` are not needed, everything is at hand."""
        stored = self._stream(user_id)
        async with stored.lock:
            stream = MemoryLockedStream(
                user_id, stored, self._keys, self.clock(), self._max_event_bytes
            )
            yield stream
            self._commit(stored, stream)

    async def read_stream(self, user_id: str) -> list[Envelope]:
        return list(self._stream(user_id).events)

    async def snapshot(self, user_id: str) -> tuple[int, UserSyncState]:
        """The stream's version and state snapshot, without locking."""
        stored = self._stream(user_id)
        return stored.version, stored.state

    async def users_with_lapsed_leases(self, limit: int) -> list[str]:
        """Users whose running task's lease has run out, by the store's clock."""
        now = self.clock()
        streams = list(self._streams.values())
        lapsed = [
            (s.state.lease_expires_at, s.user_id)
            for s in streams
            if s.state.status == "running"
            and s.state.lease_expires_at is not None
            and s.state.lease_expires_at <= now
        ]
        return [user for _, user in sorted(lapsed)[:limit]]

    def _stream(self, user_id: str) -> StoredStream:
        return self._streams.setdefault(stream_id_for(user_id), StoredStream(user_id))

    def _commit(self, stored: StoredStream, stream: MemoryLockedStream) -> None:
        if stored.version != stream.locked_version:
            raise ConcurrencyConflict(f"{stream.stream_id} moved past {stream.locked_version}")
        stored.events += stream.staged
        stored.version, stored.state, stored.last_hash = (
            stream.version,
            stream.state,
            stream.last_hash,
        )
        self._keys.update(stream.staged_keys)
