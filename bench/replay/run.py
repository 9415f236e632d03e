"""Benchmark of `syncctl replay verify` and `rebuild` beside a raw server-side cursor read.

    .venv/bin/python -m bench.replay --events 1000000 --users 10000 --repeat 3

Writes a valid history (hash chains, snapshots, every event type, decided by the real
aggregate on a simulated clock) into a fresh database with COPY, then runs each measurement
in a child process of its own: the rate is events over the command's wall time (imports and
process start excluded); "peak" is the child's peak RSS during the command (VmHWM, reset
just before it via /proc/self/clear_refs, so import-time garbage does not count; ru_maxrss
where that is unavailable) and "grew" is that peak minus the RSS just before. A smaller
history (--small, default a quarter) is measured too: flat memory means equal peaks.
PostgreSQL comes from SYNC_BENCH_DATABASE_URL or is started embedded.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, suppress
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg

from bench.common.services import fresh_database, libpq, server_url
from core.domain.commands import (
    Command,
    CompleteSync,
    ExpireStaleSync,
    FailSync,
    ReportProgress,
    RequestMeta,
    StartRequested,
)
from core.domain.events import stamp
from core.domain.hash_chain import GENESIS, chain_envelope
from core.domain.user_sync import UserSyncState, decide, evolve

ROOT = Path(__file__).resolve().parents[2]
LEASE = timedelta(minutes=30)
KINDS = ("raw", "read", "verify", "rebuild")
PRELOAD = (
    "coordinator.replay.history",
    "coordinator.replay.shadow_views",
    "coordinator.replay.audit",
    "coordinator.replay.swap",
    "coordinator.replay.verify",
    "coordinator.replay.verify_topic",
)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _command(rng: random.Random, user: str, state: UserSyncState, now: datetime) -> Command:
    """What a busy user and their worker would send next."""
    meta = RequestMeta(f"req-{rng.getrandbits(48):012x}")
    task = state.task_id or "none"
    if not state.is_live(now):
        if state.status == "running" and rng.random() < 0.5:
            return ExpireStaleSync(user, RequestMeta("reaper"))
        return StartRequested(user, rng.random() < 0.2, meta)
    roll = rng.random()
    if roll < 0.45:
        return StartRequested(user, rng.random() < 0.2, meta)
    if roll < 0.85:
        stats = {"messages": rng.randrange(10_000)}
        return ReportProgress(user, task, round(rng.uniform(0, 99), 2), stats, meta)
    if roll < 0.95:
        return CompleteSync(user, task, {"messages": rng.randrange(10_000)}, meta)
    return FailSync(user, task, "mailbox unavailable", meta)


def user_history(rng: random.Random, user: str, count: int) -> tuple[list[tuple[Any, ...]], Any]:
    """About `count` event rows (COPY order) and the stream row, decided by the aggregate."""
    stream_id = f"UserSync-{user}"
    state, version, previous = UserSyncState(), 0, GENESIS
    now = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(86_400))
    rows: list[tuple[Any, ...]] = []
    while version < count:
        command = _command(rng, user, state, now)
        task_id = f"sync_{rng.getrandbits(128):032x}"
        events = decide(state, command, now, LEASE, partial(str, task_id))
        meta = command.meta
        for envelope in stamp(
            events,
            stream_id=stream_id,
            user_id=user,
            after_version=version,
            now=now,
            correlation_id=meta.correlation_id,
            causation_id=meta.command_id,
        ):
            # Seeded ids: the same history on every run.
            envelope = replace(envelope, event_id=str(UUID(int=rng.getrandbits(128), version=4)))
            chained = chain_envelope(previous, envelope)
            digest = chained.hash
            rows.append(
                (envelope.event_id, stream_id, envelope.version, envelope.event_type,
                 envelope.schema_version, now,
                 json.dumps(chained.data), json.dumps(chained.metadata), previous, digest)
            )  # fmt: skip
            previous, version, state = digest, envelope.version, evolve(state, envelope.data)
        # Mostly seconds apart, sometimes long enough for the lease to run out.
        now += timedelta(seconds=rng.choice((2, 5, 30, 90, 600, 2400)))
    live_until = state.lease_expires_at if state.status == "running" else None
    head = (stream_id, user, version, json.dumps(state.to_json()), now, live_until, previous)
    return rows, head


def generate(url: str, events: int, users: int, seed: int) -> int:
    """Write the history with COPY; returns the number of events written."""
    rng = random.Random(seed)
    written = 0
    per_user = max(1, events // users)
    names = [f"user-{n:07d}" for n in range(users)]
    with psycopg.connect(libpq(url)) as conn, conn.cursor() as cursor:
        # Stream rows first (the events reference them); their heads are known only later.
        with cursor.copy("COPY streams (stream_id, user_id) FROM STDIN") as copy:
            for name in names:
                copy.write_row((f"UserSync-{name}", name))
        heads = []
        with cursor.copy(
            "COPY events (event_id, stream_id, version, event_type, schema_version, "
            "occurred_at, data, metadata, prev_hash, hash) FROM STDIN"
        ) as copy:
            for name in names:
                rows, head = user_history(rng, name, per_user)
                for row in rows:
                    copy.write_row(row)
                written += len(rows)
                heads.append(head)
        cursor.execute("CREATE TEMP TABLE heads (LIKE streams)")
        with cursor.copy(
            "COPY heads (stream_id, user_id, version, state, updated_at, live_until, last_hash) "
            "FROM STDIN"
        ) as copy:
            for head in heads:
                copy.write_row(head)
        cursor.execute(
            "UPDATE streams s SET version = h.version, state = h.state, updated_at = h.updated_at, "
            "live_until = h.live_until, last_hash = h.last_hash FROM heads h "
            "WHERE h.stream_id = s.stream_id"
        )
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return written


def raw_read(url: str) -> int:
    """A plain server-side psycopg cursor over the same query verify and rebuild run."""
    from coordinator.replay.history import ALL_EVENTS

    rows = 0
    with psycopg.connect(libpq(url)) as conn, conn.cursor(name="bench_raw") as cursor:
        cursor.execute(ALL_EVENTS)
        while batch := cursor.fetchmany(2000):
            rows += len(batch)
    return rows


def _proc_status_kb(field: str) -> int | None:
    """A memory figure of this process from /proc (Linux); None elsewhere."""
    with suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def tool_read(url: str) -> int:
    """The replay tool's own read path alone (chunked streaming, its JSON loader)."""
    from coordinator.replay.history import HistoryReader

    with HistoryReader(url) as history:
        return sum(1 for _ in history.events())


def child(kind: str, url: str) -> None:
    """One measurement in this process; prints its figures as JSON."""
    from coordinator import cli
    from core.settings import Settings

    # Everything the command imports is imported first, so "grew" is the data's share.
    for module in PRELOAD:
        importlib.import_module(module)
    before = _proc_status_kb("VmRSS") or 0
    with suppress(OSError):  # clear_refs 5 resets the peak (VmHWM): imports do not count
        Path("/proc/self/clear_refs").write_text("5")
    started = time.perf_counter()
    if kind == "raw":
        code = 0 if raw_read(url) else 1
    elif kind == "read":
        code = 0 if tool_read(url) else 1
    else:
        out = io.StringIO()
        code = cli.run(Settings(database_url=url), ["replay", kind], out, io.StringIO())
    seconds = time.perf_counter() - started
    peak = _proc_status_kb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"code": code, "seconds": seconds, "peak_kb": peak, "before_kb": before}))


def measure(kind: str, url: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "bench.replay", "--child", kind, "--url", url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    figures: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return figures


def settle(url: str) -> None:
    """Do now what autovacuum would otherwise do during the next measurement."""
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")


def run_size(stack: ExitStack, server: str, events: int, users: int, repeat: int) -> list[str]:
    url = fresh_database(stack, server, "bench_replay")
    began = time.perf_counter()
    written = generate(url, events, users, seed=events)
    log(f"wrote {written:,} events for {users:,} users in {time.perf_counter() - began:.0f}s")
    # The live views as the projector would hold them, so the measured rebuilds find no diff.
    from coordinator import cli
    from core.settings import Settings

    cli.run(
        Settings(database_url=url), ["replay", "rebuild", "--swap"], io.StringIO(), io.StringIO()
    )
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
    for round_ in range(repeat):
        for kind in KINDS:
            settle(url)
            figures = measure(kind, url)
            assert figures["code"] == 0, f"{kind} exited {figures['code']}"
            runs[kind].append(figures)
            log(f"  round {round_ + 1} {kind:<8} {written / figures['seconds']:>10,.0f} ev/s")
    rates = {kind: [written / f["seconds"] for f in runs[kind]] for kind in KINDS}
    raw, read = statistics.median(rates["raw"]), statistics.median(rates["read"])
    lines = []
    for kind in KINDS:
        rate = statistics.median(rates[kind])
        spread = f"{min(rates[kind]) / 1000:.0f}-{max(rates[kind]) / 1000:.0f}k"
        peak = statistics.median(f["peak_kb"] for f in runs[kind]) / 1024
        grew = statistics.median(f["peak_kb"] - f["before_kb"] for f in runs[kind]) / 1024
        lines.append(
            f"| {written:>9,} | {kind:<7} | {rate:>9,.0f} | {spread:>9} | {rate / raw:>4.2f} | "
            f"{rate / read:>5.2f} | {peak:>7.0f} | {grew:>7.0f} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--small", type=int, help="also measure this many events (default: 1/4)")
    parser.add_argument("--child", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.url)
        return 0
    small = args.events // 4 if args.small is None else args.small
    sizes = [size for size in (small, args.events) if size > 0]
    table = [
        f"| {'events':>9} | {'run':<7} | {'ev/s':>9} | {'min-max':>9} | {'/raw':>4} | "
        f"{'/read':>5} | {'peak MB':>7} | {'grew MB':>7} |",
        "|" + "|".join("-" * n for n in (11, 9, 11, 11, 6, 7, 9, 9)) + "|",
    ]
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp, ExitStack() as stack:
        server = server_url(stack, Path(tmp), log)
        for size in sizes:
            table += run_size(stack, server, size, args.users, args.repeat)
    print(f"medians of {args.repeat} runs; ev/s = events / wall seconds of the command;")
    print("raw = plain server-side psycopg cursor; read = the tool's own read path alone;")
    print("peak = child's peak RSS during the command (VmHWM); grew = peak minus RSS before it")
    print("\n".join(table))
    return 0
