"""The command path's SQL: the statements of one locked transaction.

event_store.py sends them on the event loop in two pipelined round trips: `lock_reads` and
`lookup_reads`, then the stream's `writes`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from coordinator.service.ports import Lookups
from core.domain.user_sync import stream_id_for

OUTBOX_CHANNEL = "sync_outbox"
SET_LOCK_TIMEOUT = "SELECT set_config('lock_timeout', %(value)s, true)"

# The command path runs its statements on the pooled connection's psycopg cursor:
# SQLAlchemy's per-statement work was a sixth of the API's CPU per start command.

# The row may not exist yet and FOR UPDATE locks nothing that is absent, so it is
# created first; ON CONFLICT keeps concurrent first starts from failing.
CREATE_STREAM = (
    "INSERT INTO streams (stream_id, user_id) VALUES (%(stream_id)s, %(user_id)s) "
    "ON CONFLICT DO NOTHING"
)
# clock_timestamp(), not now(): now() is the transaction's start, before the lock wait.
LOCK_STREAM = (
    "SELECT version, state, last_hash, clock_timestamp() AS now FROM streams "
    "WHERE stream_id = %(stream_id)s FOR UPDATE"
)
EVENT_COLUMNS = (
    "event_id",
    "stream_id",
    "version",
    "event_type",
    "schema_version",
    "occurred_at",
    "data",
    "metadata",
    "prev_hash",
    "hash",
)
INSERT_EVENT = (
    "INSERT INTO events (event_id, stream_id, version, event_type, schema_version, "
    "occurred_at, data, metadata, prev_hash, hash) VALUES (%(event_id)s, %(stream_id)s, "
    "%(version)s, %(event_type)s, %(schema_version)s, %(occurred_at)s, CAST(%(data)s AS jsonb), "
    "CAST(%(metadata)s AS jsonb), %(prev_hash)s, %(hash)s)"
)
UPDATE_STREAM = (
    "UPDATE streams SET version = %(version)s, state = CAST(%(state)s AS jsonb), "
    "updated_at = %(now)s, live_until = %(live_until)s, last_hash = %(last_hash)s "
    "WHERE stream_id = %(stream_id)s AND version = %(expected)s RETURNING version"
)
INSERT_OUTBOX = (
    "INSERT INTO outbox (event_id, user_id, payload) VALUES "
    "(%(event_id)s, %(user_id)s, CAST(%(payload)s AS jsonb))"
)
# A batch's rows go in one statement per table, as one JSON array: the statement count of a
# transaction does not grow with its batch (on the async path every statement of a pipeline
# costs the event loop a turn). WITH ORDINALITY keeps the array's order, so positions and
# outbox ids follow the versions.
INSERT_EVENTS = (
    "INSERT INTO events (event_id, stream_id, version, event_type, schema_version, "
    "occurred_at, data, metadata, prev_hash, hash) "
    "SELECT r.event_id, r.stream_id, r.version, r.event_type, r.schema_version, "
    "r.occurred_at, r.data, r.metadata, r.prev_hash, r.hash "
    "FROM ROWS FROM (jsonb_to_recordset(CAST(%(rows)s AS jsonb)) AS (event_id uuid, "
    "stream_id text, version bigint, event_type text, schema_version integer, "
    "occurred_at timestamptz, data jsonb, metadata jsonb, prev_hash text, hash text)) "
    "WITH ORDINALITY AS r(event_id, stream_id, version, event_type, schema_version, "
    "occurred_at, data, metadata, prev_hash, hash, n) ORDER BY r.n"
)
INSERT_OUTBOXES = (
    "INSERT INTO outbox (event_id, user_id, payload) SELECT r.event_id, r.user_id, r.payload "
    "FROM ROWS FROM (jsonb_to_recordset(CAST(%(rows)s AS jsonb)) AS (event_id uuid, "
    "user_id text, payload jsonb)) WITH ORDINALITY AS r(event_id, user_id, payload, n) "
    "ORDER BY r.n"
)
REMEMBER_KEYS = (
    "INSERT INTO idempotency_keys (user_id, key, fingerprint, response) "
    "SELECT r.user_id, r.key, r.fingerprint, r.response FROM jsonb_to_recordset("
    "CAST(%(rows)s AS jsonb)) AS r(user_id text, key text, fingerprint text, response jsonb)"
)
NOTIFY = f"SELECT pg_notify('{OUTBOX_CHANNEL}', '')"
RECALL = (
    "SELECT fingerprint, response FROM idempotency_keys "
    "WHERE user_id = %(user_id)s AND key = %(key)s"
)
REMEMBER = (
    "INSERT INTO idempotency_keys (user_id, key, fingerprint, response) "
    "VALUES (%(user_id)s, %(key)s, %(fingerprint)s, CAST(%(response)s AS jsonb))"
)
# Scans the user's own events (by the stream's key): only a cancel of an older task asks.
LAST_EVENT_OF_TASK = (
    "SELECT event_type FROM events WHERE stream_id = %(stream_id)s "
    "AND data->>'task_id' = %(task_id)s ORDER BY version DESC LIMIT 1"
)
# Read with the lock, before the batch is decided: what its commands will ask the stream.
RECALL_KEYS = (
    "SELECT key, fingerprint, response FROM idempotency_keys "
    "WHERE user_id = %(user_id)s AND key = ANY(%(keys)s)"
)
LAST_EVENTS_OF_TASKS = (
    "SELECT DISTINCT ON (data->>'task_id') data->>'task_id', event_type FROM events "
    "WHERE stream_id = %(stream_id)s AND data->>'task_id' = ANY(%(tasks)s) "
    "ORDER BY data->>'task_id', version DESC"
)


@dataclass(frozen=True)
class Write:
    """One statement of a transaction and its parameters."""

    sql: str
    params: dict[str, Any]


def json_rows(rows: list[dict[str, Any]], encoded: tuple[str, ...]) -> str:
    """The rows as one JSON array; the `encoded` fields already hold JSON text, spliced in
    as it is (not encoded twice), and datetimes are written in ISO 8601."""
    items = []
    for row in rows:
        plain = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}
        parts = [f"{json.dumps(name)}:{plain.pop(name)}" for name in encoded]
        parts += [f"{json.dumps(name)}:{json.dumps(value)}" for name, value in plain.items()]
        items.append("{" + ",".join(parts) + "}")
    return "[" + ",".join(items) + "]"


@dataclass
class LookedUp:
    """What was read with the lock: idempotency keys and tasks' last event types (None:
    the stream has none)."""

    keys: dict[str, tuple[str, dict[str, Any]] | None] = field(default_factory=dict)
    tasks: dict[str, str | None] = field(default_factory=dict)


def lock_reads(user_id: str, lock_timeout: str | None) -> list[Write]:
    """Create the stream if absent, then lock it; the last one returns the locked row.
    `lock_timeout` for this transaction, unless the connection has it already (None)."""
    stream_id = stream_id_for(user_id)
    reads = [] if lock_timeout is None else [Write(SET_LOCK_TIMEOUT, {"value": lock_timeout})]
    return [
        *reads,
        Write(CREATE_STREAM, {"stream_id": stream_id, "user_id": user_id}),
        Write(LOCK_STREAM, {"stream_id": stream_id}),
    ]


def lookup_reads(user_id: str, lookups: Lookups) -> list[Write]:
    """What the batch will ask, read after the lock in the same round trip."""
    reads = []
    if lookups.keys:
        reads.append(Write(RECALL_KEYS, {"user_id": user_id, "keys": sorted(lookups.keys)}))
    if lookups.tasks:
        params = {"stream_id": stream_id_for(user_id), "tasks": sorted(lookups.tasks)}
        reads.append(Write(LAST_EVENTS_OF_TASKS, params))
    return reads


def looked_up(lookups: Lookups, results: list[list[Any]]) -> LookedUp:
    """LookedUp from the rows of `lookup_reads`, in its order."""
    found = LookedUp()
    rows = iter(results)
    if lookups.keys:
        found.keys = dict.fromkeys(lookups.keys)
        found.keys.update((key, (fingerprint, answer)) for key, fingerprint, answer in next(rows))
    if lookups.tasks:
        found.tasks = dict.fromkeys(lookups.tasks)
        found.tasks.update((task, str(kind)) for task, kind in next(rows))
    return found
