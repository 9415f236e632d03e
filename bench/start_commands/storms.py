"""One user's click storm in bench/start_commands/run.py: across two API processes, and as seen by
a neighbour (fresh users clicking at a steady pace) while it rages."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import Any
from uuid import uuid4

import psycopg

from bench.common.loadgen import WARMUP_SECONDS, BenchFailure, Stats, Target, percentile, verdict
from bench.common.services import ROOT, Services
from bench.common.wrk_driver import drive

STORM_PER_PROCESS = 100
NEIGHBOUR_STORM = 200
PROBE_INTERVAL = 0.05
NEIGHBOUR_TARGET = 2.0  # p99 during the storm over p99 alone, at most
PACE_KEPT = 0.9  # share of the planned probe clicks that must have been sent
# A p99 of 80 clicks is their second slowest: one stray pause decides it. The probe runs
# this many times --seconds, so each p99 stands on a few hundred clicks.
PROBE_LENGTH = 3


def api_targets(services: Services) -> list[Target]:
    """Both API processes' start endpoints."""

    def at(base: str) -> Callable[[str], str]:
        return lambda _user: f"{base}/sync/smart?force_full=false"

    return [
        Target(name, at(base), services.secret, services.logs[name])
        for name, base in (("api", services.api_url), ("api2", services.second_api_url))
    ]


def started_tasks(services: Services, user: str) -> int:
    with psycopg.connect(services.api_database) as conn:
        row = conn.execute(
            "SELECT count(*) FROM events WHERE stream_id = %s AND event_type = 'SyncStarted'",
            (f"UserSync-{user}",),
        ).fetchone()
    return int(row[0]) if row else 0


def two_process_storm(services: Services, seconds: float) -> dict[str, Any]:
    """One user's storm over both API processes against the same load from distinct users."""
    targets, concurrency = api_targets(services), 2 * STORM_PER_PROCESS
    hot = f"storm-{uuid4().hex[:12]}"
    distinct = drive(
        targets, [f"user-{uuid4().hex[:12]}" for _ in range(30_000)], concurrency, seconds
    )
    storm = drive(targets, [hot], concurrency, seconds)
    return {
        "distinct": asdict(distinct),
        "storm": asdict(storm),
        "throughput_ratio": storm.rps / distinct.rps,
        "p99_ratio": storm.p99_ms / distinct.p99_ms,
        "storm_started_tasks": started_tasks(services, hot),
        "sustained": distinct.sustained and storm.sustained,
    }


def run_probe(services: Services, seconds: float, delay: float) -> subprocess.Popen[str]:
    url = f"{services.api_url}/sync/smart?force_full=false"
    argv = [sys.executable, "-m", "bench.start_commands.neighbour_probe", url, services.secret]
    argv += ["--delay", str(delay), "--seconds", str(seconds), "--interval", str(PROBE_INTERVAL)]
    return subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)


def probe_result(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = process.communicate(timeout=120)
    body: dict[str, Any] = json.loads(out)
    if body["failures"]:
        raise BenchFailure(f"neighbour probe: {body['failures'][:3]}")
    ms = body["latencies_ms"]
    return {
        "clicks": len(ms),
        "planned": body["planned"],
        "p50_ms": statistics.median(ms),
        "p99_ms": percentile(ms, 99),
        "pace_kept": len(ms) >= PACE_KEPT * body["planned"],
    }


def neighbour_probe(services: Services, seconds: float) -> dict[str, Any]:
    """Fresh users' clicks alone, then during one user's storm of 200 clicks in flight."""
    seconds *= PROBE_LENGTH
    quiet = probe_result(run_probe(services, seconds, 0.0))
    # The probe starts after the storm's warm-up and ends before its window does.
    probe = run_probe(services, seconds - 1, WARMUP_SECONDS + 0.5)
    hot = f"storm-{uuid4().hex[:12]}"
    storm: Stats = drive(api_targets(services)[0], [hot], NEIGHBOUR_STORM, seconds)
    during = probe_result(probe)
    return {
        "quiet": quiet,
        "during": during,
        "storm": asdict(storm),
        "p99_ratio": during["p99_ms"] / quiet["p99_ms"],
        "sustained": quiet["pace_kept"] and during["pace_kept"] and storm.sustained,
    }


def print_storms(storm: dict[str, Any], neighbour: dict[str, Any]) -> None:
    d, s = storm["distinct"], storm["storm"]
    ok = storm["throughput_ratio"] >= 1.0 and storm["storm_started_tasks"] == 1
    print(f"storm over two API processes, {2 * STORM_PER_PROCESS} in flight:")
    print(f"  distinct users: {d['rps']:.0f} r/s, p50/p99 {d['p50_ms']:.1f}/{d['p99_ms']:.1f} ms")
    print(f"  one user:       {s['rps']:.0f} r/s, p50/p99 {s['p50_ms']:.1f}/{s['p99_ms']:.1f} ms")
    print(
        f"  throughput ratio {storm['throughput_ratio']:.2f} (target >= 1.0), SyncStarted "
        f"{storm['storm_started_tasks']} (target 1): {verdict(ok, storm['sustained'])}"
    )
    q, w = neighbour["quiet"], neighbour["during"]
    ratio = neighbour["p99_ratio"]
    print("neighbour probe, fresh users every 50 ms (ms):")
    print(
        f"  alone:                  p50 {q['p50_ms']:.1f}  p99 {q['p99_ms']:.1f}  ({q['clicks']})"
    )
    print(
        f"  during a 200-click storm: p50 {w['p50_ms']:.1f}  p99 {w['p99_ms']:.1f}  ({w['clicks']})"
    )
    print(
        f"  storm {neighbour['storm']['rps']:.0f} r/s; p99 ratio {ratio:.2f} "
        f"(target <= {NEIGHBOUR_TARGET}): "
        f"{verdict(ratio <= NEIGHBOUR_TARGET, neighbour['sustained'])}"
    )
