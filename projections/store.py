"""PostgreSQL side of the projections: lock, load and bulk-upsert the views in one transaction."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import fields
from typing import Any, TypeVar

import orjson
import psycopg
from psycopg.types.json import set_json_dumps, set_json_loads
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy import exc as sa_exc

from core.domain.events import Envelope, envelope_from_stored
from core.domain.frozen import frozen_from_fields
from core.store_errors import StoreUnavailable
from projections import status_notices
from projections.row_cache import DEFAULT_CAPACITY, RowCache
from projections.status_view import StatusRow
from projections.task_history import TaskRow

STATUS_TYPES = {
    "user_id": "text",
    "task_id": "text",
    "is_syncing": "boolean",
    "status": "text",
    "sync_type": "text",
    "started_at": "timestamptz",
    "updated_at": "timestamptz",
    "lease_expires_at": "timestamptz",
    "progress_percentage": "double precision",
    "current_stats": "jsonb",
    "error_message": "text",
    "full_sync_queued": "boolean",
    "last_version": "bigint",
    "follow_up_queued": "boolean",
}
TASK_TYPES = {
    "task_id": "text",
    "user_id": "text",
    "sync_type": "text",
    "status": "text",
    "started_at": "timestamptz",
    "finished_at": "timestamptz",
    "lease_expires_at": "timestamptz",
    "reuse_count": "integer",
    "progress_percentage": "double precision",
    "stats": "jsonb",
    "error_message": "text",
    "replaces_task_id": "text",
    "start_reason": "text",
    "last_version": "bigint",
}


class ViewTable:
    """A view table and the statements that bulk-upsert it through a staging table."""

    def __init__(self, table: str, key: str, types: Mapping[str, str], row: type) -> None:
        # Rows are read and written positionally: the columns are the dataclass's fields, and
        # a row's __dict__ holds them in that order (its __init__, _build and the folds keep
        # it; an attrgetter per row cost a tenth of a batch).
        if tuple(types) != tuple(f.name for f in fields(row)):
            raise TypeError(f"{table} columns differ from the fields of {row.__name__}")
        self.columns = tuple(types)
        columns = ", ".join(types)
        staging = f"{table}_batch"
        self.types = list(types.values())
        # ON COMMIT DELETE ROWS: the staging table lives as long as the connection, and is
        # empty at the start of every batch.
        self.create = (
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} "
            f"({', '.join(f'{c} {t}' for c, t in types.items())}) ON COMMIT DELETE ROWS"
        )
        self.copy = f"COPY {staging} ({columns}) FROM STDIN (FORMAT BINARY)"
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in types if c != key)
        # In key order, like the locks: concurrent inserts of new keys cannot deadlock.
        self.merge = (
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {staging} ORDER BY {key} "
            f"ON CONFLICT ({key}) DO UPDATE SET {updates} "
            f"WHERE {table}.last_version < EXCLUDED.last_version"
        )


STATUS = ViewTable("sync_status", "user_id", STATUS_TYPES, StatusRow)
TASKS = ViewTable("sync_tasks", "task_id", TASK_TYPES, TaskRow)

# Sorted, so two projectors that briefly share a partition after a rebalance lock in the
# same order. Users without a row lock nothing here: their first INSERT waits for the
# other's, and the last_version guard of the upsert keeps whichever row is further along.
# xmin is the transaction that last wrote the row (see row_cache.py).
LOCK_STATUS = (
    "SELECT user_id, last_version, xmin::text::bigint FROM sync_status "
    "WHERE user_id = ANY(%s) ORDER BY user_id FOR UPDATE"
)
LOAD_STATUS = f"SELECT {', '.join(STATUS_TYPES)} FROM sync_status WHERE user_id = ANY(%s)"
LOAD_TASKS = f"SELECT {', '.join(TASK_TYPES)} FROM sync_tasks WHERE task_id = ANY(%s)"
MISSING_EVENTS = (
    "SELECT event_id, event_type, schema_version, version, occurred_at, data, metadata "
    "FROM events WHERE stream_id = %s AND version > %s AND version < %s ORDER BY version"
)
RECORD_LAG = (
    "INSERT INTO projection_lag (consumer_group, topic, partition, lag, updated_at) "
    "SELECT %s, %s, p, l, now() "
    "FROM unnest(CAST(%s AS integer[]), CAST(%s AS bigint[])) AS x(p, l) "
    "ON CONFLICT (consumer_group, topic, partition) "
    "DO UPDATE SET lag = EXCLUDED.lag, updated_at = EXCLUDED.updated_at"
)
# Every payload of a batch in one statement: a round trip per payload (a few dozen for a
# batch of 10,000 users) was a tenth of the writer's time.
NOTIFY_STATUS = (
    f"SELECT pg_notify('{status_notices.CHANNEL}', payload) "
    "FROM unnest(CAST(%s AS text[])) WITH ORDINALITY AS x(payload, n) ORDER BY n"
)
# This transaction's id as a row's xmin shows it (32 bits, without the epoch).
WRITER_XID = "SELECT pg_current_xact_id()::xid::text::bigint"


Row = TypeVar("Row", StatusRow, TaskRow)


def _build(cls: type[Row], columns: tuple[str, ...], values: tuple[Any, ...]) -> Row:
    """A row from its columns in field order (its __init__ was a third of the cost of
    reading a batch's rows back)."""
    return frozen_from_fields(cls, zip(columns, values, strict=True))


class ProjectionBatch:
    """The projector's view of the database inside one open transaction."""

    def __init__(self, conn: Connection) -> None:
        # The hot statements go straight to psycopg, in SQLAlchemy's transaction: its result
        # rows cost more per row than everything else the projector does with them.
        driver = conn.connection.driver_connection
        assert isinstance(driver, psycopg.Connection)
        self._cursor = driver.cursor()

    def lock_status(self, user_ids: Collection[str]) -> dict[str, tuple[int, int]]:
        """(last_version, xmin) of the status rows of these users that exist, locked until
        commit."""
        self._cursor.execute(LOCK_STATUS, (sorted(user_ids),))
        return {user: (version, xmin) for user, version, xmin in self._cursor.fetchall()}

    def load_status(self, user_ids: Collection[str]) -> dict[str, StatusRow]:
        """Status rows by user id; absent ids are left out."""
        if not user_ids:
            return {}
        self._cursor.execute(LOAD_STATUS, (list(user_ids),))
        return {row[0]: _build(StatusRow, STATUS.columns, row) for row in self._cursor.fetchall()}

    def load_tasks(self, task_ids: Collection[str]) -> dict[str, TaskRow]:
        """Task rows by id; absent ids are left out."""
        if not task_ids:
            return {}
        self._cursor.execute(LOAD_TASKS, (list(task_ids),))
        return {row[0]: _build(TaskRow, TASKS.columns, row) for row in self._cursor.fetchall()}

    def missing_events(self, stream_id: str, after: int, before: int) -> list[Envelope]:
        """Stored events strictly between two versions, in version order."""
        self._cursor.execute(MISSING_EVENTS, (stream_id, after, before))
        return [
            envelope_from_stored(
                event_id=event_id,
                event_type=event_type,
                schema_version=schema_version,
                stream_id=stream_id,
                version=version,
                occurred_at=occurred_at,
                data=data,
                metadata=metadata,
            )
            for event_id, event_type, schema_version, version, occurred_at, data, metadata in (
                self._cursor.fetchall()
            )
        ]

    def save(self, statuses: Sequence[StatusRow], tasks: Sequence[TaskRow]) -> None:
        """Upsert both views; each key at most once per call, never moving a row back."""
        # Binary COPY into a staging table, then one INSERT ... ON CONFLICT: psycopg writes
        # binary rows in C, where a JSON or text document per batch cost more in Python
        # than the rest of the fold, and PostgreSQL reads them without parsing.
        for view, rows in ((STATUS, statuses), (TASKS, tasks)):
            if rows:
                self._cursor.execute(view.create)
                with self._cursor.copy(view.copy) as copy:
                    copy.set_types(view.types)
                    for row in rows:
                        copy.write_row(tuple(vars(row).values()))
                self._cursor.execute(view.merge)
        # Delivered on commit only: the API's status streams read back committed rows.
        payloads = status_notices.encode(row.user_id for row in statuses)
        if payloads:
            self._cursor.execute(NOTIFY_STATUS, (payloads,))

    def writer_xid(self) -> int:
        """The id of this transaction, which rows it wrote show as their xmin."""
        self._cursor.execute(WRITER_XID)
        row = self._cursor.fetchone()
        assert row is not None
        return int(row[0])

    def record_lag(self, group_id: str, topic: str, lag: Mapping[int, int]) -> None:
        """Records not yet consumed per partition, for /metrics."""
        if lag:
            self._cursor.execute(RECORD_LAG, (group_id, topic, list(lag), list(lag.values())))


def _json_by_orjson(conn: psycopg.Connection[Any], record: object) -> None:
    """Stats columns through orjson: the json module's dumps and loads were a tenth of a batch."""
    set_json_dumps(_dumps, conn)
    set_json_loads(_loads, conn)


def _dumps(value: Any) -> bytes | str:
    try:
        return orjson.dumps(value)
    except TypeError:  # integers beyond 64 bits, keys that are not strings
        return json.dumps(value)


def _loads(data: bytes | bytearray | memoryview | str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:  # integers beyond 64 bits
        return json.loads(bytes(data) if isinstance(data, memoryview) else data)


class ProjectionStore:
    """Owns the engine; hands out one transaction per batch."""

    def __init__(self, url: str, pool_size: int = 2, cache_users: int = DEFAULT_CAPACITY) -> None:
        # A lock held by a projector that lost its partition must not stall this one
        # forever: after lock_timeout the batch fails and is retried.
        self._engine: Engine = create_engine(
            url,
            pool_size=pool_size,
            max_overflow=0,
            pool_timeout=5,
            pool_pre_ping=True,
            connect_args={"connect_timeout": 3, "options": "-c lock_timeout=10s"},
        )
        event.listen(self._engine, "connect", _json_by_orjson)
        # The rows the batches of this store wrote, checked against the database per batch.
        self.written = RowCache(cache_users)

    @contextmanager
    def transaction(self) -> Iterator[ProjectionBatch]:
        """One transaction: committed on exit, rolled back on error."""
        try:
            with self._engine.begin() as conn:
                yield ProjectionBatch(conn)
        except (
            sa_exc.OperationalError,
            sa_exc.InterfaceError,
            sa_exc.TimeoutError,
            psycopg.OperationalError,
            psycopg.InterfaceError,
        ) as error:
            raise StoreUnavailable(str(error).splitlines()[0]) from error

    def close(self) -> None:
        self._engine.dispose()
