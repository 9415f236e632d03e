"""What bench/start_commands/run.py runs against: PostgreSQL, fresh databases, the servers."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy import make_url

from coordinator.adapters.postgres.migrate import upgrade
from coordinator.dev.embedded import free_port, start_postgres
from coordinator.dev.processes import stop_processes, wait_ready
from core.domain.user_sync import UserSyncState, stream_id_for

ROOT = Path(__file__).resolve().parents[2]
HISTORY_EVENTS = 100_000
# Hashes link each event to the one before (the chain's head is the stream's last_hash) but
# are digests of the stream id and version, not of the content: plausible rows, cheaply made.
HASH = "encode(sha256(convert_to(%(stream_id)s::text || ':' || {}, 'UTF8')), 'hex')"
HISTORY_SQL = f"""
INSERT INTO events (event_id, stream_id, version, event_type, schema_version, occurred_at,
                    data, metadata, prev_hash, hash)
SELECT gen_random_uuid(), %(stream_id)s, g,
       CASE WHEN g = 1 THEN 'SyncStarted' ELSE 'SyncReused' END, 1,
       %(started)s + g * interval '1 second',
       jsonb_build_object('task_id', %(task)s::text, 'sync_type', 'incremental',
                          'requested_sync_type', 'incremental',
                          'started_at', %(started_iso)s::text,
                          'lease_expires_at', %(lease_iso)s::text),
       jsonb_build_object('user_id', %(user)s::text, 'correlation_id', gen_random_uuid()::text,
                          'causation_id', gen_random_uuid()::text),
       CASE WHEN g = 1 THEN (SELECT last_hash FROM streams WHERE stream_id = %(stream_id)s)
            ELSE {HASH.format("(g - 1)")} END,
       {HASH.format("g")}
FROM generate_series(1, %(count)s::int) AS g
"""
HISTORY_HEAD = (
    f"UPDATE streams SET last_hash = {HASH.format('version')} WHERE stream_id = %(stream_id)s"
)


Log = Callable[[str], None]


@dataclass
class Services:
    api_url: str
    baseline_url: str
    secret: str
    history_user: str
    logs: dict[str, Path]
    second_api_url: str  # a second `syncctl api` on the same database, for cross-process storms
    api_database: str


def with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def server_url(stack: ExitStack, tmp: Path, log: Log) -> str:
    """SYNC_BENCH_DATABASE_URL as an SQLAlchemy psycopg URL, or a new embedded server's."""
    given = os.environ.get("SYNC_BENCH_DATABASE_URL")
    if given:
        url = make_url(given).set(drivername="postgresql+psycopg")
        return url.render_as_string(hide_password=False)
    log("starting embedded PostgreSQL ...")
    server = start_postgres(tmp / "pgdata", delete_on_stop=True)
    stack.callback(server.stop)
    return server.url


def fresh_database(stack: ExitStack, server: str, prefix: str) -> str:
    """A new migrated database, dropped again on the way out."""
    name = f"{prefix}_{uuid4().hex[:10]}"
    with psycopg.connect(libpq(with_database(server, "postgres")), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")

    def drop() -> None:
        with psycopg.connect(libpq(with_database(server, "postgres")), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    stack.callback(drop)
    url = with_database(server, name)
    upgrade(url)
    return url


def stop_process(process: subprocess.Popen[bytes]) -> None:
    stop_processes(process)


def serve(stack: ExitStack, argv: list[str], env: dict[str, str], port: int, log: Path) -> str:
    """Start a server subprocess, stopped on the way out; its URL once /readyz answers 200."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SYNC_")}
    with open(log, "wb") as out:
        process = subprocess.Popen(
            argv, env={**base, **env}, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )
    stack.callback(stop_process, process)
    url = f"http://127.0.0.1:{port}"
    wait_ready(f"{url}/readyz", process, 60, log)
    return url


def prepare_history(database: str, user: str, count: int = HISTORY_EVENTS) -> None:
    """A stream of `count` events whose snapshot is a running task with a far-away lease."""
    started = datetime.now(UTC) - timedelta(days=1)
    lease = started + timedelta(days=3650)
    task = f"sync_{uuid4().hex}"
    state = UserSyncState(task, "incremental", "running", started, lease, reuse_count=count - 1)
    stream_id = stream_id_for(user)
    with psycopg.connect(libpq(database), autocommit=True) as conn:
        with conn.transaction():
            conn.execute(
                "INSERT INTO streams (stream_id, user_id, version, state) VALUES (%s, %s, %s, %s)",
                (stream_id, user, count, Jsonb(state.to_json())),
            )
            conn.execute(
                HISTORY_SQL,
                {
                    "stream_id": stream_id,
                    "user": user,
                    "task": task,
                    "started": started,
                    "started_iso": started.isoformat(),
                    "lease_iso": lease.isoformat(),
                    "count": count,
                },
            )
            conn.execute(HISTORY_HEAD, {"stream_id": stream_id})
        conn.execute("VACUUM ANALYZE events")


def start_services(stack: ExitStack, tmp: Path, log: Log, workers: int = 1) -> Services:
    """Databases, the history user, `syncctl api` and the baseline app, all ready; the API and
    the baseline each run as `workers` processes on their port."""
    server = server_url(stack, tmp, log)
    api_db = fresh_database(stack, server, "bench_api")
    baseline_db = fresh_database(stack, server, "bench_baseline")
    history_user = f"history-{uuid4().hex[:12]}"
    log(f"writing {HISTORY_EVENTS:,} events for {history_user} ...")
    prepare_history(api_db, history_user)
    secret = secrets.token_hex(32)
    api_port = free_port()
    api_env = {
        "SYNC_DATABASE_URL": api_db,
        "SYNC_JWT_SECRET": secret,
        "SYNC_API_PORT": str(api_port),
        "SYNC_API_HOST": "127.0.0.1",
        "SYNC_API_WORKERS": str(workers),
    }
    log("starting syncctl api and the baseline app ...")
    api_url = serve(
        stack, [sys.executable, "-m", "coordinator.cli", "api"], api_env, api_port, tmp / "api.log"
    )
    second_port = free_port()
    second_api_url = serve(
        stack,
        [sys.executable, "-m", "coordinator.cli", "api"],
        {**api_env, "SYNC_API_PORT": str(second_port)},
        second_port,
        tmp / "api2.log",
    )
    baseline_port = free_port()
    baseline_url = serve(
        stack,
        [
            sys.executable,
            "-m",
            "bench.start_commands.baseline_app",
            str(baseline_port),
            str(workers),
        ],
        {"BENCH_DATABASE_URL": libpq(baseline_db)},
        baseline_port,
        tmp / "baseline.log",
    )
    logs = {"api": tmp / "api.log", "api2": tmp / "api2.log", "baseline": tmp / "baseline.log"}
    return Services(
        api_url, baseline_url, secret, history_user, logs, second_api_url, libpq(api_db)
    )
