"""Whole-history reads for the replay tool: one consistent snapshot, streamed in bounded memory."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, LiteralString, TypeVar

import psycopg
from psycopg.types.json import set_json_loads

from coordinator.adapters.postgres.dead_letters import LIST as DEAD_LETTERS
from coordinator.adapters.postgres.dead_letters import DeadLetter
from coordinator.replay.records import OutboxEntry, StoredEvent, StreamRow
from core.database import libpq_url
from core.store_errors import StoreUnavailable

T = TypeVar("T")
EVENT_COLUMNS = (
    "event_id::text, stream_id, version, event_type, schema_version, occurred_at, data, "
    "metadata, prev_hash, hash"
)
STREAM_COLUMNS = "stream_id, user_id, version, state, last_hash, live_until"
# The (stream_id, version) unique index hands the rows over in this order without a sort.
ALL_EVENTS: LiteralString = f"SELECT {EVENT_COLUMNS} FROM events ORDER BY stream_id, version"
# Each stream row followed by its events, in one ordered pass (a Merge Append of the two
# indexes): the server compares stream ids in its collation, which Python cannot reproduce,
# and streams without events or events without a stream show up without extra queries.
STREAMS_AND_EVENTS: LiteralString = (
    "SELECT NULL::text, stream_id, 0::bigint AS version, NULL::text, NULL::int, "
    "NULL::timestamptz, NULL::jsonb, NULL::jsonb, NULL::text, NULL::text, "
    "user_id, version AS head, state, last_hash, live_until FROM streams "
    f"UNION ALL SELECT {EVENT_COLUMNS}, NULL, NULL, NULL, NULL, NULL FROM events "
    "ORDER BY stream_id, version"
)
STREAM_EVENTS: LiteralString = (
    f"SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = %(stream)s "
    "AND (%(since)s::timestamptz IS NULL OR occurred_at >= %(since)s::timestamptz) "
    "AND (%(until)s::timestamptz IS NULL OR occurred_at <= %(until)s::timestamptz) "
    "ORDER BY version"
)
EVENTS_OF_STREAMS: LiteralString = (
    f"SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = ANY(%s) ORDER BY stream_id, version"
)
STREAM_OF_USER: LiteralString = f"SELECT {STREAM_COLUMNS} FROM streams WHERE user_id = %s"
STREAM_VERSIONS: LiteralString = "SELECT stream_id, version FROM streams ORDER BY stream_id"
EXPECTED_EVENTS: LiteralString = "SELECT coalesce(sum(version), 0)::bigint FROM streams"
# In SQL rather than a Python set: a million ids would cost memory that grows with history.
DUPLICATE_EVENT_IDS: LiteralString = (
    "SELECT event_id::text, array_agg(stream_id ORDER BY stream_id, version), "
    "array_agg(version ORDER BY stream_id, version) FROM events "
    "GROUP BY event_id HAVING count(*) > 1 ORDER BY event_id"
)
STALE_OUTBOX: LiteralString = (
    "SELECT event_id::text, coalesce(payload->>'stream_id', 'UserSync-' || user_id), "
    "(payload->>'version')::bigint, "
    "extract(epoch FROM clock_timestamp() - created_at)::float8 "
    "FROM outbox WHERE created_at < clock_timestamp() - make_interval(secs => %s) ORDER BY id"
)
PENDING_OUTBOX: LiteralString = (
    "SELECT payload->>'stream_id', (payload->>'version')::bigint FROM outbox ORDER BY id"
)
EVENTS_BY_ID: LiteralString = f"SELECT {EVENT_COLUMNS} FROM events WHERE event_id = ANY(%s::uuid[])"


def connect(url: str, *, snapshot: bool) -> psycopg.Connection[Any]:
    """A connection named in pg_stat_activity; snapshot: one REPEATABLE READ read-only view."""
    try:
        conn = psycopg.connect(
            libpq_url(url), application_name="syncctl-replay", connect_timeout=5, autocommit=False
        )
    except psycopg.OperationalError as error:
        raise StoreUnavailable(f"database unavailable: {error}".strip()) from error
    if snapshot:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
    else:
        conn.autocommit = True
    set_json_loads(_load_json, conn)
    return conn


# The C scanner behind json.loads, without its wrapper (not in the type stubs).
_scan_json: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _load_json(document: str | bytes) -> Any:
    """Parse a jsonb value: UTF-8 without surrounding whitespace, as the server writes it.

    json.loads spends longer detecting the encoding and skipping whitespace than parsing
    documents this small; on a million events that is a third of the read.
    """
    text = document.decode() if isinstance(document, bytes) else document
    return _scan_json(text, 0)[0]


def _stream_or_event(row: tuple[Any, ...]) -> StreamRow | StoredEvent:
    if row[0] is None:
        return StreamRow(row[1], row[10], row[11], row[12], row[13], row[14])
    return StoredEvent._make(row[:10])


class HistoryReader:
    """The event store as of one snapshot: every query of a run sees the same history."""

    def __init__(self, url: str, batch: int = 2000) -> None:
        self._conn = connect(url, snapshot=True)
        self._batch = batch

    def __enter__(self) -> HistoryReader:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """End the read-only transaction; nothing was written."""
        self._conn.rollback()
        self._conn.close()

    def _stream(
        self,
        query: LiteralString,
        params: Sequence[Any] | Mapping[str, Any],
        make: Callable[[Any], T],
    ) -> Iterator[T]:
        """Rows streamed in chunks of `batch` (libpq chunked mode), never the whole result.

        Unlike FETCH from a server-side cursor there is no round trip per batch: the server
        keeps producing while this process works on the rows before, and TCP flow control
        bounds what is buffered. The connection runs nothing else until the rows are read.
        """
        with self._conn.cursor() as cursor:
            yield from map(make, cursor.stream(query, params, size=self._batch))

    def expected_events(self) -> int:
        """How many events the stream rows account for (for a progress bar; no scan)."""
        row = self._conn.execute(EXPECTED_EVENTS).fetchone()
        return int(row[0]) if row else 0

    def events(self) -> Iterator[StoredEvent]:
        """Every event, ordered by stream then version."""
        return self._stream(ALL_EVENTS, (), StoredEvent._make)

    def streams_and_events(self) -> Iterator[StreamRow | StoredEvent]:
        """Every stream row, each followed by its events in version order."""
        return self._stream(STREAMS_AND_EVENTS, (), _stream_or_event)

    def stream_events(
        self, stream_id: str, since: datetime | None = None, until: datetime | None = None
    ) -> Iterator[StoredEvent]:
        """One stream's events in version order, optionally only those within [since, until]."""
        params = {"stream": stream_id, "since": since, "until": until}
        return self._stream(STREAM_EVENTS, params, StoredEvent._make)

    def find_stream(self, user_id: str) -> StreamRow | None:
        """A user's stream row, if the user ever sent a command."""
        row = self._conn.execute(STREAM_OF_USER, (user_id,)).fetchone()
        return StreamRow._make(row) if row else None

    def stream_versions(self) -> Iterator[tuple[str, int]]:
        """(stream id, version) of every stream."""
        return self._stream(STREAM_VERSIONS, (), lambda row: (row[0], int(row[1])))

    def duplicate_event_ids(self) -> Iterator[tuple[str, list[tuple[str, int]]]]:
        """Event ids stored more than once, with every (stream, version) holding them."""
        return self._stream(
            DUPLICATE_EVENT_IDS, (), lambda row: (row[0], list(zip(row[1], row[2], strict=True)))
        )

    def stale_outbox(self, max_age_seconds: float) -> Iterator[OutboxEntry]:
        """Outbox rows waiting longer than max_age_seconds."""
        return self._stream(STALE_OUTBOX, (max_age_seconds,), OutboxEntry._make)

    def dead_letters(self) -> Iterator[DeadLetter]:
        """Events the broker refused for good, oldest first."""
        return self._stream(DEAD_LETTERS, (), DeadLetter._make)

    def pending_outbox(self) -> Iterator[tuple[str, int]]:
        """(stream id, version) of every event not yet published."""
        return self._stream(PENDING_OUTBOX, (), lambda row: (row[0], int(row[1])))


class EventLookup:
    """Events by id in the current state of the store (not a snapshot), for topic checks."""

    def __init__(self, url: str) -> None:
        self._conn = connect(url, snapshot=False)

    def by_ids(self, event_ids: Sequence[str]) -> dict[str, StoredEvent]:
        """The stored events among these ids (ids must be UUID strings)."""
        if not event_ids:
            return {}
        rows = self._conn.execute(EVENTS_BY_ID, (list(event_ids),)).fetchall()
        return {row[0]: StoredEvent._make(row) for row in rows}

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()
