"""Shadow copies of the projected views for `replay rebuild`: fill, diff, promote."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from coordinator.replay.history import EVENTS_OF_STREAMS, connect
from coordinator.replay.records import StoredEvent
from projections.status_view import StatusRow
from projections.task_history import TaskRow

REBUILD_LOCK_KEY = 7204187


@dataclass(frozen=True)
class ShadowView:
    """A live view, its shadow, and the key both are unique by."""

    live: str
    shadow: str
    key: str
    columns: tuple[str, ...]


VIEWS = {
    "status": ShadowView(
        "sync_status", "sync_status_rebuild", "user_id", tuple(f.name for f in fields(StatusRow))
    ),
    "tasks": ShadowView(
        "sync_tasks", "sync_tasks_rebuild", "task_id", tuple(f.name for f in fields(TaskRow))
    ),
}


class RebuildBusy(Exception):
    """Another rebuild holds the shadow tables."""


class SwapFailed(Exception):
    """The live views could not be locked in time; nothing was changed."""


def _copy_values(row: StatusRow | TaskRow, columns: Sequence[str]) -> tuple[Any, ...]:
    return tuple(
        Jsonb(value) if isinstance(value, dict) else value
        for value in (getattr(row, name) for name in columns)
    )


class ShadowViews:
    """Owns one connection; shadow writes share one transaction until commit()."""

    def __init__(self, url: str) -> None:
        self._conn = connect(url, snapshot=False)
        self._conn.autocommit = False
        # One rebuild at a time: two would empty each other's shadow tables.
        row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (REBUILD_LOCK_KEY,)).fetchone()
        self._conn.commit()
        if not row or not row[0]:
            self._conn.close()
            raise RebuildBusy("another `syncctl replay rebuild` is running")

    def close(self) -> None:
        """Roll back anything uncommitted; the advisory lock goes with the session."""
        self._conn.rollback()
        self._conn.close()

    def prepare(self, names: Sequence[str]) -> None:
        """Fresh, empty shadows shaped like today's live tables (unlogged: scratch data)."""
        for name in names:
            view = VIEWS[name]
            shadow, live = sql.Identifier(view.shadow), sql.Identifier(view.live)
            self._conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(shadow))
            self._conn.execute(
                sql.SQL("CREATE UNLOGGED TABLE {} (LIKE {} INCLUDING ALL)").format(shadow, live)
            )
        self._conn.commit()

    def write(self, statuses: Sequence[StatusRow], tasks: Sequence[TaskRow]) -> None:
        """COPY rows into the shadows (in the open transaction)."""
        for name, rows in (("status", statuses), ("tasks", tasks)):
            if not rows:
                continue
            view = VIEWS[name]
            statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
                sql.Identifier(view.shadow), sql.SQL(", ").join(map(sql.Identifier, view.columns))
            )
            with self._conn.cursor() as cursor, cursor.copy(statement) as copy:
                for row in rows:
                    copy.write_row(_copy_values(row, view.columns))

    def commit(self, names: Sequence[str] = ()) -> None:
        """Make the shadow rows visible; analyze new shadows so the diff is planned on facts."""
        self._conn.commit()
        for name in names:
            self._conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(VIEWS[name].shadow)))
        self._conn.commit()

    def diff(self, name: str) -> Iterator[tuple[str, dict[str, Any] | None, dict[str, Any] | None]]:
        """(key, shadow row, live row) for every key whose rows differ, by key."""
        view = VIEWS[name]
        query = sql.SQL(
            "SELECT coalesce(s.{key}, l.{key}), to_jsonb(s), to_jsonb(l) "
            "FROM {shadow} s FULL JOIN {live} l ON l.{key} = s.{key} "
            "WHERE ROW(s.*) IS DISTINCT FROM ROW(l.*) ORDER BY 1"
        ).format(
            key=sql.Identifier(view.key),
            shadow=sql.Identifier(view.shadow),
            live=sql.Identifier(view.live),
        )
        with self._conn.cursor(name=f"replay_diff_{name}") as cursor:
            cursor.execute(query)
            while rows := cursor.fetchmany(1000):
                yield from ((str(key), shadow, live) for key, shadow, live in rows)
        self._conn.commit()

    @contextmanager
    def swap(self, names: Sequence[str], lock_timeout_seconds: float) -> Iterator[SwapTransaction]:
        """One transaction holding the live views against writers (readers go on)."""
        self._conn.commit()
        with self._conn.transaction():
            self._conn.execute(
                "SELECT set_config('lock_timeout', %s, true)",
                (f"{int(lock_timeout_seconds * 1000)}ms",),
            )
            # EXCLUSIVE, not ACCESS EXCLUSIVE: the API keeps reading the old rows until
            # commit, while the projector's FOR UPDATE and upserts wait for the new ones.
            lives = sql.SQL(", ").join(sql.Identifier(VIEWS[name].live) for name in names)
            try:
                self._conn.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(lives))
            except psycopg.errors.LockNotAvailable as error:
                raise SwapFailed(
                    f"the live views stayed locked for {lock_timeout_seconds:g}s; nothing changed"
                ) from error
            yield SwapTransaction(self._conn, self)


class SwapTransaction:
    """What promotion does inside the swap's transaction."""

    def __init__(self, conn: psycopg.Connection[Any], views: ShadowViews) -> None:
        self._conn = conn
        self._views = views

    def moved_streams(self) -> list[tuple[str, str]]:
        """(stream, user) of streams whose store version passed the shadow's checkpoint."""
        rows = self._conn.execute(
            "SELECT st.stream_id, st.user_id FROM streams st "
            "LEFT JOIN sync_status_rebuild s ON s.user_id = st.user_id "
            "WHERE st.version > coalesce(s.last_version, 0) ORDER BY st.stream_id"
        ).fetchall()
        return [(str(stream), str(user)) for stream, user in rows]

    def events_of(self, stream_ids: Sequence[str]) -> Iterator[StoredEvent]:
        """Those streams' events as committed now, ordered by stream and version."""
        with self._conn.cursor(name="replay_moved") as cursor:
            cursor.execute(EVENTS_OF_STREAMS, (list(stream_ids),))
            while rows := cursor.fetchmany(2000):
                yield from map(StoredEvent._make, rows)

    def forget(self, names: Sequence[str], user_ids: Sequence[str]) -> None:
        """Drop these users' shadow rows before they are folded again."""
        for name in names:
            self._conn.execute(
                sql.SQL("DELETE FROM {} WHERE user_id = ANY(%s)").format(
                    sql.Identifier(VIEWS[name].shadow)
                ),
                (list(user_ids),),
            )

    def write(self, statuses: Sequence[StatusRow], tasks: Sequence[TaskRow]) -> None:
        """COPY refolded rows into the shadows."""
        self._views.write(statuses, tasks)

    def merge(self, name: str) -> tuple[int, int]:
        """Make the live view equal the shadow, touching only differing rows: (written, deleted)."""
        view = VIEWS[name]
        columns = self._live_columns(view.live)
        names = {
            "live": sql.Identifier(view.live),
            "shadow": sql.Identifier(view.shadow),
            "key": sql.Identifier(view.key),
            "columns": sql.SQL(", ").join(map(sql.Identifier, columns)),
            "from_shadow": sql.SQL(", ").join(sql.Identifier("s", c) for c in columns),
            "updates": sql.SQL(", ").join(
                sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c))
                for c in columns
                if c != view.key
            ),
        }
        deleted = self._conn.execute(
            sql.SQL(
                "DELETE FROM {live} l WHERE NOT EXISTS "
                "(SELECT 1 FROM {shadow} s WHERE s.{key} = l.{key})"
            ).format(**names)
        ).rowcount
        written = self._conn.execute(
            sql.SQL(
                "INSERT INTO {live} ({columns}) SELECT {from_shadow} FROM {shadow} s "
                "LEFT JOIN {live} l ON l.{key} = s.{key} WHERE ROW(s.*) IS DISTINCT FROM ROW(l.*) "
                "ON CONFLICT ({key}) DO UPDATE SET {updates}"
            ).format(**names)
        ).rowcount
        return written, deleted

    def _live_columns(self, table: str) -> list[str]:
        rows = self._conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass "
            "AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            (table,),
        ).fetchall()
        return [str(row[0]) for row in rows]
