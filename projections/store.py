"""PostgreSQL side of the projections: lock, load and bulk-upsert the views in one transaction."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import Connection, Engine, TextClause, create_engine, text
from sqlalchemy import exc as sa_exc

from coordinator.domain.events import Envelope, envelope_from_stored
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
    "last_version": "bigint",
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
    "last_version": "bigint",
}


def _upsert(table: str, key: str, types: Mapping[str, str]) -> TextClause:
    """One INSERT of a JSON array of rows (one round trip per batch); never moves a row back."""
    columns = ", ".join(types)
    record = ", ".join(f"{c} {t}" for c, t in types.items())
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in types if c != key)
    # One JSON document is far cheaper to build in Python than one bound array per column.
    return text(
        f"INSERT INTO {table} ({columns}) "
        f"SELECT {columns} FROM json_to_recordset(CAST(:rows AS json)) AS x({record}) "
        f"ON CONFLICT ({key}) DO UPDATE SET {updates} "
        f"WHERE {table}.last_version < EXCLUDED.last_version"
    )


UPSERT_STATUS = _upsert("sync_status", "user_id", STATUS_TYPES)
UPSERT_TASKS = _upsert("sync_tasks", "task_id", TASK_TYPES)
# Sorted, so two projectors that briefly share a partition after a rebalance lock in the
# same order. Users without a row lock nothing here: their first INSERT waits for the
# other's, and the last_version guard of the upsert keeps whichever row is further along.
LOCK_STATUS = text(
    f"SELECT {', '.join(STATUS_TYPES)} FROM sync_status "
    "WHERE user_id = ANY(CAST(:ids AS text[])) ORDER BY user_id FOR UPDATE"
)
LOAD_TASKS = text(
    f"SELECT {', '.join(TASK_TYPES)} FROM sync_tasks WHERE task_id = ANY(CAST(:ids AS text[]))"
)
MISSING_EVENTS = text(
    "SELECT event_id, event_type, schema_version, version, occurred_at, data, metadata "
    "FROM events WHERE stream_id = :s AND version > :after AND version < :before ORDER BY version"
)
RECORD_LAG = text(
    "INSERT INTO projection_lag (consumer_group, topic, partition, lag, updated_at) "
    "SELECT :group_id, :topic, p, l, now() "
    "FROM unnest(CAST(:partitions AS integer[]), CAST(:lags AS bigint[])) AS x(p, l) "
    "ON CONFLICT (consumer_group, topic, partition) "
    "DO UPDATE SET lag = EXCLUDED.lag, updated_at = EXCLUDED.updated_at"
)


class StoreUnavailable(Exception):
    """The database could not be reached or gave up on the batch; retrying it is safe."""


def _rows_json(rows: Sequence[StatusRow] | Sequence[TaskRow]) -> str:
    """Rows as a JSON array of objects keyed by column."""
    return json.dumps([vars(r) for r in rows], default=_iso, separators=(",", ":"))


def _iso(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot store {value!r} as JSON")


class ProjectionBatch:
    """The projector's view of the database inside one open transaction."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def lock_status(self, user_ids: Collection[str]) -> dict[str, StatusRow]:
        """Status rows of these users that exist, locked until commit."""
        rows = self._conn.execute(LOCK_STATUS, {"ids": sorted(user_ids)}).mappings()
        return {r["user_id"]: StatusRow(**r) for r in rows}

    def load_tasks(self, task_ids: Collection[str]) -> dict[str, TaskRow]:
        """Task rows by id; absent ids are left out."""
        if not task_ids:
            return {}
        rows = self._conn.execute(LOAD_TASKS, {"ids": sorted(task_ids)}).mappings()
        return {r["task_id"]: TaskRow(**r) for r in rows}

    def missing_events(self, stream_id: str, after: int, before: int) -> list[Envelope]:
        """Stored events strictly between two versions, in version order."""
        rows = self._conn.execute(
            MISSING_EVENTS, {"s": stream_id, "after": after, "before": before}
        )
        return [
            envelope_from_stored(
                event_id=row.event_id,
                event_type=row.event_type,
                schema_version=row.schema_version,
                stream_id=stream_id,
                version=row.version,
                occurred_at=row.occurred_at,
                data=row.data,
                metadata=row.metadata,
            )
            for row in rows
        ]

    def save(self, statuses: Sequence[StatusRow], tasks: Sequence[TaskRow]) -> None:
        """Upsert both views; each key at most once per call."""
        # In key order, like the locks: concurrent inserts of new keys cannot deadlock.
        if statuses:
            rows = sorted(statuses, key=lambda r: r.user_id)
            self._conn.execute(UPSERT_STATUS, {"rows": _rows_json(rows)})
        if tasks:
            rows_ = sorted(tasks, key=lambda r: r.task_id)
            self._conn.execute(UPSERT_TASKS, {"rows": _rows_json(rows_)})

    def record_lag(self, group_id: str, topic: str, lag: Mapping[int, int]) -> None:
        """Records not yet consumed per partition, for /metrics."""
        if lag:
            self._conn.execute(
                RECORD_LAG,
                {
                    "group_id": group_id,
                    "topic": topic,
                    "partitions": list(lag),
                    "lags": list(lag.values()),
                },
            )


class ProjectionStore:
    """Owns the engine; hands out one transaction per batch."""

    def __init__(self, url: str, pool_size: int = 2) -> None:
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

    @contextmanager
    def transaction(self) -> Iterator[ProjectionBatch]:
        """One transaction: committed on exit, rolled back on error."""
        try:
            with self._engine.begin() as conn:
                yield ProjectionBatch(conn)
        except (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError) as error:
            raise StoreUnavailable(str(error).splitlines()[0]) from error

    def close(self) -> None:
        self._engine.dispose()
