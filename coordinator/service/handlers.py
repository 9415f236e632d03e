"""Command handlers: load the aggregate under its lock, decide, append, answer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from coordinator.domain.commands import StartRequested
from coordinator.domain.events import SyncReused
from coordinator.domain.user_sync import decide, fold
from coordinator.service.ports import (
    ConcurrencyConflict,
    ConflictRetriesExhausted,
    EventStore,
)


class IdempotencyKeyReused(Exception):
    """An idempotency key came back with different request parameters."""


@dataclass(frozen=True)
class StartOutcome:
    """What a start command decided, as the caller needs to know it."""

    task_id: str
    sync_type: str
    started_at: datetime
    lease_expires_at: datetime
    reused: bool
    version: int
    replayed: bool = False

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["started_at"] = self.started_at.isoformat()
        body["lease_expires_at"] = self.lease_expires_at.isoformat()
        del body["replayed"]
        return body

    @classmethod
    def from_json(cls, body: dict[str, Any], *, replayed: bool) -> StartOutcome:
        return cls(
            task_id=body["task_id"],
            sync_type=body["sync_type"],
            started_at=datetime.fromisoformat(body["started_at"]),
            lease_expires_at=datetime.fromisoformat(body["lease_expires_at"]),
            reused=body["reused"],
            version=body["version"],
            replayed=replayed,
        )


@dataclass(frozen=True)
class Dependencies:
    """What handlers are given by the composition root."""

    store: EventStore
    lease: timedelta
    conflict_retries: int


def start_sync(command: StartRequested, deps: Dependencies) -> StartOutcome:
    """Start a sync for the user, or join the live one; retried on a version conflict."""
    for _ in range(deps.conflict_retries + 1):
        try:
            return _start_once(command, deps)
        except ConcurrencyConflict:
            continue
    raise ConflictRetriesExhausted(
        f"stream of user {command.user_id!r} kept moving; gave up after "
        f"{deps.conflict_retries + 1} attempts"
    )


def _start_once(command: StartRequested, deps: Dependencies) -> StartOutcome:
    key = command.meta.idempotency_key
    fingerprint = f"force_full={command.force_full}"
    with deps.store.lock_stream(command.user_id) as stream:
        if key is not None:
            prior = stream.recall_response(key)
            if prior is not None:
                if prior[0] != fingerprint:
                    raise IdempotencyKeyReused(
                        f"Idempotency-Key {key!r} was first used with {prior[0]}, not {fingerprint}"
                    )
                return StartOutcome.from_json(prior[1], replayed=True)
        events = decide(stream.state, command, stream.now, deps.lease)
        stored = stream.append(events, command.meta)
        state = fold(events, stream.state)
        assert state.task_id and state.sync_type and state.started_at and state.lease_expires_at
        outcome = StartOutcome(
            task_id=state.task_id,
            sync_type=state.sync_type,
            started_at=state.started_at,
            lease_expires_at=state.lease_expires_at,
            reused=isinstance(events[-1], SyncReused),
            version=stored[-1].version,
        )
        if key is not None:
            stream.remember_response(key, fingerprint, outcome.to_json())
        return outcome


Handler = Callable[[Any, Dependencies], Any]
HANDLERS: dict[type, Handler] = {StartRequested: start_sync}
