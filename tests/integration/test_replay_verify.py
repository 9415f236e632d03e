"""`syncctl replay verify` against a real database: each rule caught, a clean history passes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb
from sqlalchemy import Engine

from coordinator import cli
from coordinator.service.handlers import (
    Dependencies,
    handle,
)
from core.database import libpq_url, make_engine
from core.domain.commands import (
    CompleteSync,
    FailSync,
    ReportProgress,
    RequestMeta,
    StartRequested,
)
from core.domain.events import EVENT_TYPES, data_from_json
from core.domain.hash_chain import GENESIS, chain_hash
from core.domain.user_sync import fold, stream_id_for
from core.settings import Settings
from tests.e2e.processes import process_env
from tests.integration.test_projector import random_workload
from tests.support.command_loop import command_store, run
from tests.support.random_refs import random_name, random_user

Found = set[tuple[str, str, int | None]]


@pytest.fixture
def own_engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=4)
    yield engine
    engine.dispose()


def replay(url: str, *argv: str, **settings: Any) -> tuple[int, str, str]:
    """Run `syncctl replay ...` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = cli.run(Settings(database_url=url, **settings), ["replay", *argv], out, err)
    return code, out.getvalue(), err.getvalue()


def verify(url: str, *argv: str, **settings: Any) -> tuple[int, Found, dict[str, Any]]:
    """Exit code, (rule, stream, version) of every violation, and the JSON summary."""
    code, out, _ = replay(url, "verify", "--format", "json", *argv, **settings)
    body = json.loads(out)
    found = {(v["rule"], v["stream_id"], v["version"]) for v in body["violations"]}
    return code, found, body["summary"]


@dataclass(frozen=True)
class Users:
    """One user per outcome; names sort in this order in any collation."""

    done: str  # started, progress, completed
    reused: str  # started, reused twice
    lapsed: str  # started with a lease that ran out at once, expired, started again
    failed: str  # started, failed

    @staticmethod
    def stream(user: str) -> str:
        return stream_id_for(user)


def scripted(engine: Engine) -> Users:
    tag = random_user("")
    users = Users(f"a{tag}", f"b{tag}", f"c{tag}", f"d{tag}")
    store = command_store(engine)
    lease = Dependencies(store, timedelta(minutes=30), 3)

    def meta() -> RequestMeta:
        return RequestMeta(random_name("req"))

    def task(user: str) -> str:
        return run(store.snapshot(user))[1].task_id or "none"

    for user in (users.done, users.reused, users.failed):
        run(handle(StartRequested(user, False, meta()), lease))
    run(handle(ReportProgress(users.done, task(users.done), 50.0, {"m": 5}, meta()), lease))
    run(handle(CompleteSync(users.done, task(users.done), {"m": 10}, meta()), lease))
    run(handle(StartRequested(users.reused, False, meta()), lease))
    run(handle(StartRequested(users.reused, False, meta()), lease))
    run(handle(FailSync(users.failed, task(users.failed), "auth revoked", meta()), lease))
    run(handle(StartRequested(users.lapsed, False, meta()), Dependencies(store, timedelta(0), 3)))
    run(handle(StartRequested(users.lapsed, False, meta()), lease))
    return users


def tamper(url: str, statement: str, params: tuple[Any, ...] = ()) -> None:
    """Change history behind the database's back: the immutability trigger paused."""
    with psycopg.connect(libpq_url(url)) as conn:
        conn.execute("ALTER TABLE events DISABLE TRIGGER events_no_update_delete")
        conn.execute(statement, params)
        conn.execute("ALTER TABLE events ENABLE TRIGGER events_no_update_delete")


def reseal(url: str, user: str) -> None:
    """Recompute the stream's chain, head, version and snapshot: a forger leaving no trace."""
    stream = stream_id_for(user)
    with psycopg.connect(libpq_url(url)) as conn:
        conn.execute("ALTER TABLE events DISABLE TRIGGER events_no_update_delete")
        rows = conn.execute(
            "SELECT position, event_id::text, version, event_type, schema_version, occurred_at, "
            "data, metadata FROM events WHERE stream_id = %s ORDER BY version",
            (stream,),
        ).fetchall()
        previous = GENESIS
        for position, event_id, version, event_type, schema, occurred_at, data, meta in rows:
            digest = chain_hash(
                previous,
                event_id=event_id,
                stream_id=stream,
                version=version,
                event_type=event_type,
                schema_version=schema,
                occurred_at=occurred_at,
                data=data,
                metadata=meta,
            )
            conn.execute(
                "UPDATE events SET prev_hash = %s, hash = %s WHERE position = %s",
                (previous, digest, position),
            )
            previous = digest
        state = fold(data_from_json(r[3], r[6], r[4]) for r in rows if r[3] in EVENT_TYPES)
        conn.execute(
            "UPDATE streams SET last_hash = %s, version = %s, state = %s, live_until = %s "
            "WHERE stream_id = %s",
            (
                previous,
                rows[-1][2],
                Jsonb(state.to_json()),
                state.lease_expires_at if state.status == "running" else None,
                stream,
            ),
        )
        conn.execute("ALTER TABLE events ENABLE TRIGGER events_no_update_delete")


def test_table_format_names_rule_stream_and_version(own_engine: Engine, database_url: str) -> None:
    users = scripted(own_engine)
    tamper(
        database_url,
        "UPDATE events SET data = jsonb_set(data, '{stats}', '{\"m\": 999}') "
        "WHERE stream_id = %s AND version = 2",
        (users.stream(users.done),),
    )
    code, out, _ = replay(database_url, "verify")
    assert code == 1
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["RULE", "STREAM", "VERSION", "DETAIL"]
    assert lines[1].split()[:3] == ["hash-chain", users.stream(users.done), "2"]
    assert "the event was edited" in lines[1]
    assert lines[-1].endswith("1 violations (hash-chain 1)")


def test_a_clean_random_workload_verifies_clean(own_engine: Engine, database_url: str) -> None:
    users = [random_user() for _ in range(30)]
    random_workload(own_engine, users, commands=400, seed=20260131)
    code, found, summary = verify(database_url)
    assert (code, found) == (0, set())
    assert summary["streams"] == len(users)
    with psycopg.connect(libpq_url(database_url)) as conn:
        row = conn.execute("SELECT count(*), count(DISTINCT event_type) FROM events").fetchone()
    assert row and summary["events"] == row[0]
    assert row[1] == len(EVENT_TYPES)  # every kind of event was checked
    code, out, _ = replay(database_url, "verify")
    assert code == 0 and out.splitlines()[-1].endswith(": no violations")


def test_syncctl_replay_runs_as_a_command(own_engine: Engine, database_url: str) -> None:
    users = scripted(own_engine)
    env = process_env(database_url=database_url)
    command = [sys.executable, "-m", "coordinator.cli", "replay"]
    done = subprocess.run([*command, "verify"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "verified 11 events in 4 streams: no violations\n"
    audit = [*command, "audit", "--user", users.done, "--format", "json"]
    done = subprocess.run(audit, env=env, capture_output=True, text=True)
    assert [e["version"] for e in json.loads(done.stdout)["events"]] == [1, 2, 3]
    done = subprocess.run([*command, "verify", "--help"], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and "--outbox-max-age" in done.stdout
