"""Histories written below the API, row for row as the event store writes them.

For tests that need what the API would refuse (an event too large for the broker) and
that must not depend on the command path's internals.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import psycopg

from coordinator.adapters.postgres.command_sql import INSERT_EVENT, INSERT_OUTBOX
from coordinator.adapters.postgres.event_store import event_rows
from core.database import libpq_url
from core.domain.commands import (
    Command,
    CompleteSync,
    ReportProgress,
    RequestMeta,
    StartRequested,
)
from core.domain.events import Envelope, stamp
from core.domain.hash_chain import GENESIS
from core.domain.user_sync import UserSyncState, decide, fold
from tests.support.random_refs import random_name

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
LEASE = timedelta(minutes=30)


@dataclass(frozen=True)
class History:
    """One user's events and the state they fold to."""

    user_id: str
    envelopes: list[Envelope]
    state: UserSyncState

    @property
    def stream_id(self) -> str:
        return self.envelopes[0].stream_id


def lifecycle(user_id: str, stats: dict[str, Any], at: datetime = T0) -> History:
    """Start, a progress report carrying `stats`, completion: decided by the real aggregate."""
    state, envelopes = UserSyncState(), list[Envelope]()

    def step(command: Command, now: datetime) -> None:
        nonlocal state
        events = decide(state, command, now, LEASE)
        envelopes.extend(
            stamp(
                events,
                stream_id=f"UserSync-{user_id}",
                user_id=user_id,
                after_version=len(envelopes),
                now=now,
                correlation_id=command.meta.correlation_id,
                causation_id=command.meta.command_id,
            )
        )
        state = fold(events, state)

    def meta() -> RequestMeta:
        return RequestMeta(random_name("req"), str(uuid4()))

    step(StartRequested(user_id, False, meta()), at)
    task = state.task_id or ""
    step(ReportProgress(user_id, task, 50.0, stats, meta()), at + timedelta(seconds=1))
    step(CompleteSync(user_id, task, {"messages": 10}, meta()), at + timedelta(seconds=2))
    return History(user_id, envelopes, state)


def write(database_url: str, histories: Sequence[History], outbox: Iterable[Envelope]) -> None:
    """Streams, chained events, and outbox rows in the given order, in one transaction."""
    streams, events = [], []
    for history in histories:
        rows = event_rows(history.envelopes, GENESIS)
        events += rows
        previous = rows[-1]["hash"]
        live = history.state.lease_expires_at if history.state.status == "running" else None
        last = history.envelopes[-1]
        state = json.dumps(history.state.to_json())
        streams.append(
            (
                history.stream_id,
                history.user_id,
                last.version,
                state,
                last.occurred_at,
                live,
                previous,
            )
        )
    with psycopg.connect(libpq_url(database_url)) as conn, conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO streams (stream_id, user_id, version, state, updated_at, live_until, "
            "last_hash) VALUES (%s, %s, %s, %s::jsonb, %s, %s, %s)",
            streams,
        )
        cursor.executemany(INSERT_EVENT, events)
        cursor.executemany(
            INSERT_OUTBOX,
            [
                {"event_id": e.event_id, "user_id": e.user_id, "payload": json.dumps(e.to_json())}
                for e in outbox
            ],
        )
