"""Each verify rule against a real database: exactly the injected corruption is named."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb
from sqlalchemy import Engine

from core.database import libpq_url, make_engine
from core.domain.user_sync import stream_id_for
from tests.integration.test_replay_verify import Found, Users, reseal, scripted, tamper, verify


@pytest.fixture
def own_engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=4)
    yield engine
    engine.dispose()


def event_id(url: str, user: str, version: int) -> str:
    with psycopg.connect(libpq_url(url)) as conn:
        row = conn.execute(
            "SELECT event_id::text FROM events WHERE stream_id = %s AND version = %s",
            (stream_id_for(user), version),
        ).fetchone()
    assert row
    return str(row[0])


def append_raw(url: str, user: str, event_type: str, data: dict[str, Any], after: float) -> None:
    """Insert an event the aggregate would never decide, `after` seconds past the last one."""
    stream = stream_id_for(user)
    tamper(
        url,
        "INSERT INTO events (event_id, stream_id, version, event_type, schema_version, "
        "occurred_at, data, metadata, prev_hash, hash) "
        "SELECT gen_random_uuid(), stream_id, version + 1, %s, 1, "
        "occurred_at + make_interval(secs => %s), %s, metadata, '', '' "
        "FROM events WHERE stream_id = %s ORDER BY version DESC LIMIT 1",
        (event_type, after, Jsonb(data), stream),
    )
    reseal(url, user)


def task_of(url: str, user: str, version: int) -> str:
    with psycopg.connect(libpq_url(url)) as conn:
        row = conn.execute(
            "SELECT data->>'task_id' FROM events WHERE stream_id = %s AND version = %s",
            (stream_id_for(user), version),
        ).fetchone()
    assert row
    return str(row[0])


def set_data(url: str, user: str, version: int, path: str, value: Any) -> None:
    tamper(
        url,
        "UPDATE events SET data = jsonb_set(data, %s, %s) WHERE stream_id = %s AND version = %s",
        ("{" + path + "}", Jsonb(value), stream_id_for(user), version),
    )


Corruption = Callable[[str, Users], Found]


def gap_in_versions(url: str, u: Users) -> Found:
    tamper(
        url,
        "UPDATE events SET version = 4 WHERE stream_id = %s AND version = 3",
        (u.stream(u.done),),
    )
    reseal(url, u.done)
    return {("versions-contiguous", u.stream(u.done), 4)}


def duplicate_event_id(url: str, u: Users) -> Found:
    first = event_id(url, u.done, 1)
    tamper(url, "ALTER TABLE events DROP CONSTRAINT events_event_id_key")
    tamper(
        url,
        "UPDATE events SET event_id = %s WHERE stream_id = %s AND version = 3",
        (first, u.stream(u.reused)),
    )
    reseal(url, u.reused)
    return {("event-id-unique", u.stream(u.reused), 3)}


def snapshot_edited(url: str, u: Users) -> Found:
    tamper(
        url,
        "UPDATE streams SET state = jsonb_set(state, '{reuse_count}', '7') WHERE stream_id = %s",
        (u.stream(u.reused),),
    )
    return {("snapshot-equals-fold", u.stream(u.reused), 3)}


def stream_version_ahead(url: str, u: Users) -> Found:
    tamper(url, "UPDATE streams SET version = 5 WHERE stream_id = %s", (u.stream(u.done),))
    return {("stream-version", u.stream(u.done), 5)}


def second_live_task(url: str, u: Users) -> Found:
    started = {
        "task_id": "sync_intruder",
        "sync_type": "full",
        "started_at": "2030-01-01T00:00:00+00:00",
        "lease_expires_at": "2030-01-01T00:30:00+00:00",
        "replaces_task_id": None,
    }
    append_raw(url, u.reused, "SyncStarted", started, after=1)
    return {("one-live-task", u.stream(u.reused), 4)}


def reuse_of_another_task(url: str, u: Users) -> Found:
    set_data(url, u.reused, 2, "task_id", "sync_elsewhere")
    reseal(url, u.reused)
    return {("reuse-names-live-task", u.stream(u.reused), 2)}


def completion_of_unknown_task(url: str, u: Users) -> Found:
    set_data(url, u.done, 3, "task_id", "sync_unknown")
    reseal(url, u.done)
    return {("names-open-task", u.stream(u.done), 3)}


def progress_after_failure(url: str, u: Users) -> Found:
    progress = {
        "task_id": task_of(url, u.failed, 1),
        "percent": 10.0,
        "stats": {},
        "lease_expires_at": "2030-01-01T00:00:00+00:00",
    }
    append_raw(url, u.failed, "SyncProgressed", progress, after=1)
    return {("names-open-task", u.stream(u.failed), 3)}


def edited_event(url: str, u: Users) -> Found:
    set_data(url, u.done, 2, "stats", {"m": 999})  # not in the fold: only the chain sees it
    return {("hash-chain", u.stream(u.done), 2)}


def deleted_event(url: str, u: Users) -> Found:
    tamper(url, "DELETE FROM events WHERE stream_id = %s AND version = 2", (u.stream(u.lapsed),))
    return {
        ("hash-chain", u.stream(u.lapsed), 3),
        ("versions-contiguous", u.stream(u.lapsed), 3),
    }


def deleted_last_event(url: str, u: Users) -> Found:
    tamper(url, "DELETE FROM events WHERE stream_id = %s AND version = 2", (u.stream(u.failed),))
    return {
        ("chain-head", u.stream(u.failed), 1),
        ("stream-version", u.stream(u.failed), 2),
        ("snapshot-equals-fold", u.stream(u.failed), 2),
    }


def stale_outbox_row(url: str, u: Users) -> Found:
    tamper(
        url,
        "UPDATE outbox SET created_at = created_at - interval '10 minutes' WHERE event_id = %s",
        (event_id(url, u.done, 1),),
    )
    return {("outbox-age", u.stream(u.done), 1)}


def unknown_event_type(url: str, u: Users) -> Found:
    tamper(
        url,
        "UPDATE events SET event_type = 'SyncTeleported' WHERE stream_id = %s AND version = 2",
        (u.stream(u.reused),),
    )
    reseal(url, u.reused)
    return {("undecodable-event", u.stream(u.reused), 2)}


@pytest.mark.parametrize(
    "corrupt",
    [
        gap_in_versions,
        duplicate_event_id,
        snapshot_edited,
        stream_version_ahead,
        second_live_task,
        reuse_of_another_task,
        completion_of_unknown_task,
        progress_after_failure,
        edited_event,
        deleted_event,
        deleted_last_event,
        stale_outbox_row,
        unknown_event_type,
    ],
)
def test_verify_names_exactly_the_injected_corruption(
    own_engine: Engine, database_url: str, corrupt: Corruption
) -> None:
    users = scripted(own_engine)
    assert verify(database_url)[:2] == (0, set())
    expected = corrupt(database_url, users)
    code, found, summary = verify(database_url)
    assert (code, found) == (1, expected)
    assert summary["violations"] == len(expected)
