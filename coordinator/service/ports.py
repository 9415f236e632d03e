"""What the handlers need from storage, and the errors of the command path."""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from core.domain.commands import RequestMeta
from core.domain.events import Envelope, Event
from core.domain.user_sync import UserSyncState


class ConflictRetriesExhausted(Exception):
    """Every retry of a command met a newer version; nothing was written."""


class EventTooLarge(Exception):
    """An event would exceed the size the broker takes; nothing of the command is stored."""

    def __init__(self, event_type: str, size: int, limit: int) -> None:
        super().__init__(f"the {event_type} event would be {size} bytes; the limit is {limit}")
        self.size = size
        self.limit = limit

    @classmethod
    def encoded(cls, envelopes: Sequence[Envelope], limit: int) -> list[str]:
        """Each envelope as the JSON the outbox publishes; raised before anything is staged
        when one is over `limit` bytes (the broker would refuse it for good)."""
        payloads = [json.dumps(envelope.to_json()) for envelope in envelopes]
        for envelope, payload in zip(envelopes, payloads, strict=True):
            size = len(payload.encode())
            if size > limit:
                raise cls(envelope.event_type, size, limit)
        return payloads


class QueueFull(Exception):
    """Too many of this user's commands wait in this process; the caller may retry later."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ClientGone(Exception):
    """The caller went away before its command was answered; its answer is dropped."""


@dataclass(frozen=True)
class Lookups:
    """What a batch will ask its locked stream besides the row: read with the lock at once."""

    keys: frozenset[str] = frozenset()  # idempotency keys (recall_response)
    tasks: frozenset[str] = frozenset()  # task ids (last_event_type)


NO_LOOKUPS = Lookups()


class LockedStream(Protocol):
    """One user's stream, locked for the length of a transaction."""

    stream_id: str
    user_id: str
    version: int
    state: UserSyncState
    now: datetime

    def append(self, events: Sequence[Event], meta: RequestMeta) -> list[Envelope]:
        """Stage events after `version` and advance `version` and `state`; written on commit.

        Raises EventTooLarge, staging nothing, when an event would not fit the topic.
        """
        ...

    def last_event_type(self, task_id: str) -> str | None:
        """The type of the stream's last event about this task; None if it never had it."""
        ...

    def recall_response(self, key: str) -> tuple[str, dict[str, Any]] | None:
        """The (fingerprint, response) stored for an idempotency key, if any."""
        ...

    def remember_response(self, key: str, fingerprint: str, response: dict[str, Any]) -> None:
        """Store the response for an idempotency key in this transaction (recalled at once)."""
        ...


class EventStore(Protocol):
    """Transactional access to user streams, on the event loop (no thread per transaction);
    run against both stores by tests/contract."""

    def lock_stream(
        self, user_id: str, lookups: Lookups = NO_LOOKUPS
    ) -> AbstractAsyncContextManager[LockedStream]:
        """Create the stream if absent, lock it, read the database clock; write and commit on
        exit, raising ConcurrencyConflict if the stream moved meanwhile. Besides the row the
        stream answers only `lookups`, read with the lock."""
        ...

    async def read_stream(self, user_id: str) -> list[Envelope]:
        """Every event of a user's stream, in version order."""
        ...

    async def snapshot(self, user_id: str) -> tuple[int, UserSyncState]:
        """The stream's version and state snapshot, without locking."""
        ...

    async def users_with_lapsed_leases(self, limit: int) -> list[str]:
        """Users whose running task's lease has run out by the store's clock, oldest first."""
        ...
