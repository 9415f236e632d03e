"""The backlog of part B: valid envelopes for many users, in the events table and on a topic.

Writing 100,000 events through the API would take minutes, so they are generated: each user
runs tasks in cycles (started, reused twice, progressed twice, completed) with versions
1..n, stamped by core.domain.events.stamp. The same envelopes go into `events` (with
a real hash chain, and `streams` rows with the folded snapshot) so that gap filling finds
what it looks for, and onto the topic through the relay's own to_message and KafkaPublisher:
same key, headers and value as the outbox relay sends. The topic takes them round robin over
users: a batch of 2,000 records holds 2,000 different users, the projector's worst case (no
two events of one user to fold into one row write).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import psycopg

from coordinator.adapters.kafka.publisher import KafkaPublisher
from coordinator.adapters.postgres.command_sql import EVENT_COLUMNS
from coordinator.adapters.postgres.event_store import event_rows
from coordinator.adapters.postgres.outbox_store import OutboxRow
from coordinator.relay.outbox_relay import to_message
from core.domain.events import (
    Envelope,
    Event,
    SyncCompleted,
    SyncProgressed,
    SyncReused,
    SyncStarted,
    stamp,
)
from core.domain.hash_chain import GENESIS
from core.domain.user_sync import fold, new_task_id, stream_id_for

CYCLE = ("started", "reused", "reused", "progressed", "progressed", "completed")
LEASE = timedelta(minutes=30)
PUBLISH_CHUNK = 5000
History = list[Envelope]


class _Task:
    """The task a user's generated events are about."""

    def __init__(self, at: datetime) -> None:
        self.task_id, self.started_at, self.lease = new_task_id(), at, at + LEASE


def _event(kind: str, task: _Task, at: datetime, step: int) -> Event:
    if kind == "started":
        return SyncStarted(
            task.task_id, "incremental", at, task.lease, reason="first_click", requested_by=None
        )
    if kind == "reused":
        return SyncReused(task.task_id, "incremental", "incremental", task.started_at, task.lease)
    if kind == "progressed":
        task.lease = at + LEASE
        stats = {"imported": 50 * step, "total": 100}
        return SyncProgressed(task.task_id, 50.0 * step, stats, task.lease)
    return SyncCompleted(task.task_id, {"imported": 100, "total": 100}, at)


def user_history(user: str, count: int, base: datetime) -> History:
    """`count` events of one user, versions 1..count, a second apart."""
    stream_id, envelopes = stream_id_for(user), []
    task = _Task(base)
    for version in range(1, count + 1):
        at = base + timedelta(seconds=version)
        kind = CYCLE[(version - 1) % len(CYCLE)]
        if kind == "started":
            task = _Task(at)
        step = 1 + (version - 1) % len(CYCLE) - CYCLE.index("progressed")
        envelopes += stamp(
            [_event(kind, task, at, step)],
            stream_id=stream_id,
            user_id=user,
            after_version=version - 1,
            now=at,
            correlation_id=str(uuid4()),
            causation_id=str(uuid4()),
        )
    return envelopes


def make_backlog(events: int, users: int) -> list[History]:
    """`events` events spread evenly over `users` users."""
    base = datetime.now(UTC) - timedelta(days=1)
    prefix = uuid4().hex[:6]
    return [
        user_history(f"bk-{prefix}-{n:06d}", events // users + (n < events % users), base)
        for n in range(users)
    ]


def interleaved(histories: list[History]) -> Iterator[Envelope]:
    """Round robin over users, so the topic mixes users but keeps each one's order."""
    longest = max(len(h) for h in histories)
    for step in range(longest):
        for history in histories:
            if step < len(history):
                yield history[step]


STREAM_COPY = "COPY streams (stream_id, user_id, version, state, last_hash) FROM STDIN"
EVENT_COPY = f"COPY events ({', '.join(EVENT_COLUMNS)}) FROM STDIN"


def store_events(dsn: str, histories: list[History]) -> None:
    """The streams (snapshot and chain head) and then their events, by COPY."""
    events: list[tuple[object, ...]] = []
    streams: list[tuple[object, ...]] = []
    for history in histories:
        chained = event_rows(history, GENESIS)
        events += [tuple(row[column] for column in EVENT_COLUMNS) for row in chained]
        previous = chained[-1]["hash"]
        first, state = history[0], fold(e.data for e in history)
        snapshot = json.dumps(state.to_json())
        streams.append((first.stream_id, first.user_id, history[-1].version, snapshot, previous))
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        for statement, rows in ((STREAM_COPY, streams), (EVENT_COPY, events)):
            with cur.copy(statement) as copy:
                for row in rows:
                    copy.write_row(row)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def publish(
    bootstrap: str, topic: str, histories: list[History], log: Callable[[str], None]
) -> None:
    """Every envelope onto the topic as the relay would send it, acknowledged."""
    publisher = KafkaPublisher(bootstrap, topic, timeout_seconds=60)
    try:
        chunk: list[Envelope] = []
        sent = 0
        for envelope in interleaved(histories):
            chunk.append(envelope)
            if len(chunk) == PUBLISH_CHUNK:
                sent += _send(publisher, chunk)
                chunk = []
        sent += _send(publisher, chunk)
        log(f"published {sent:,} events to {topic}")
    finally:
        publisher.close()


def _send(publisher: KafkaPublisher, envelopes: list[Envelope]) -> int:
    rows = [OutboxRow(0, e.event_id, e.user_id, e.to_json()) for e in envelopes]
    if rows:
        publisher.publish([to_message(r) for r in rows])
    return len(rows)
