"""What bench/end_to_end/run.py runs: PostgreSQL, Tansu, fresh databases, `syncctl` subprocesses.

Everything listens on loopback only; every process is stopped through its own handle.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

import psycopg

from bench.common.services import (
    ROOT,
    fresh_database,
    libpq,
    server_url,
    stop_process,
    with_database,
)
from coordinator.adapters.kafka.topic import ensure_topic
from coordinator.dev.embedded import free_port, start_tansu
from coordinator.dev.processes import wait_ready

Log = Callable[[str], None]
PARTITIONS = 8  # SYNC_KAFKA_PARTITIONS' default
# Tansu completes a consumer-group join only after the rebalance timeout.
MAX_POLL_INTERVAL_MS = 3000


@dataclass
class Backends:
    """The PostgreSQL server (SQLAlchemy URL, no database chosen yet) and the broker."""

    server: str
    bootstrap: str
    tmp: Path  # where logs (and profiles) go
    broker_pid: int
    pgdata: Path | None  # the embedded server's, for CPU accounting
    # Tansu completes a join only after this; Apache Kafka needs at least 6 s (its
    # group.min.session.timeout.ms), and the session follows it.
    max_poll_interval_ms: int = MAX_POLL_INTERVAL_MS


@dataclass
class Pipeline:
    """A running system for the click benchmark."""

    api_url: str
    database: str
    secret: str
    bootstrap: str
    topic: str
    logs: dict[str, Path]
    processes: dict[str, subprocess.Popen[bytes]]


def start_backends(stack: ExitStack, tmp: Path, logs: Path, log: Log) -> Backends:
    """PostgreSQL (embedded in tmp unless SYNC_BENCH_DATABASE_URL is set) and Tansu."""
    server = server_url(stack, tmp, log)
    log("starting Tansu ...")
    broker = start_tansu(log_path=logs / "tansu.log")
    stack.callback(broker.stop)
    embedded = not os.environ.get("SYNC_BENCH_DATABASE_URL")
    pgdata = tmp / "pgdata" if embedded else None
    return Backends(server, broker.bootstrap, logs, broker.process.pid, pgdata)


def clean_env(settings: dict[str, str]) -> dict[str, str]:
    """The parent's environment without any SYNC_* leaking in, plus these settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SYNC_")}
    return {**base, **settings}


def spawn(
    stack: ExitStack, command: str, settings: dict[str, str], log: Path, profile: bool = False
) -> subprocess.Popen[bytes]:
    """`syncctl COMMAND` as a subprocess (under cProfile if asked), stopped on the way out."""
    prof = ["-m", "cProfile", "-o", str(log.with_suffix(".prof"))] if profile else []
    argv = [sys.executable, *prof, "-m", "coordinator.cli", command]
    with open(log, "ab") as out:
        process = subprocess.Popen(
            argv, env=clean_env(settings), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )
    stack.callback(stop_process, process)
    return process


def new_topic(bootstrap: str, prefix: str) -> str:
    topic = f"{prefix}-{uuid4().hex[:10]}"
    ensure_topic(bootstrap, topic, PARTITIONS)
    return topic


def consumer_settings(backends: Backends, database: str, topic: str) -> dict[str, str]:
    """What every `syncctl` process of one system shares."""
    return {
        "SYNC_DATABASE_URL": database,
        "SYNC_KAFKA_BOOTSTRAP": backends.bootstrap,
        "SYNC_KAFKA_TOPIC": topic,
        "SYNC_KAFKA_PARTITIONS": str(PARTITIONS),
        "SYNC_CONSUMER_MAX_POLL_INTERVAL_MS": str(backends.max_poll_interval_ms),
        "SYNC_PROJECTOR_GROUP": f"projector-{uuid4().hex[:10]}",
        "SYNC_WORKER_GROUP": f"worker-{uuid4().hex[:10]}",
    }


def start_pipeline(
    stack: ExitStack, backends: Backends, worker: dict[str, str], profile: set[str], log: Log
) -> Pipeline:
    """A fresh database and topic; `syncctl api`, `relay`, `project` and `work` on them."""
    database = fresh_database(stack, backends.server, "bench_e2e")
    topic = new_topic(backends.bootstrap, "clicks")
    secret, port = secrets.token_hex(32), free_port()
    api_url = f"http://127.0.0.1:{port}"
    common = {
        **consumer_settings(backends, database, topic),
        "SYNC_JWT_SECRET": secret,
        "SYNC_API_HOST": "127.0.0.1",
        "SYNC_API_PORT": str(port),
        "SYNC_API_URL": api_url,
        **worker,
    }
    logs = {name: backends.tmp / f"{name}.log" for name in ("api", "relay", "project", "work")}
    log(f"starting syncctl api, relay, project, work on topic {topic} ...")
    processes = {"api": spawn(stack, "api", common, logs["api"], profile="api" in profile)}
    wait_ready(f"{api_url}/readyz", processes["api"], 60, logs["api"])
    for name in ("relay", "project", "work"):
        processes[name] = spawn(stack, name, common, logs[name], profile=name in profile)
    return Pipeline(api_url, database, secret, backends.bootstrap, topic, logs, processes)


def check_alive(processes: dict[str, subprocess.Popen[bytes]], logs: dict[str, Path]) -> None:
    """Stop the run if any process died: its figures would mean nothing."""
    for name, process in processes.items():
        if process.poll() is not None:
            tail = logs[name].read_text(errors="replace")[-3000:]
            raise SystemExit(f"syncctl {name} exited {process.returncode}:\n{tail}")


def copy_database(stack: ExitStack, server: str, template: str, prefix: str) -> str:
    """A new database cloned from a (migrated, filled) template, dropped on the way out."""
    name = f"{prefix}_{uuid4().hex[:10]}"
    source = with_database(server, "postgres")
    with psycopg.connect(libpq(source), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")

    def drop() -> None:
        with psycopg.connect(libpq(source), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    stack.callback(drop)
    return with_database(server, name)
