"""Benchmark of the start command: `syncctl api` against a bare-SQL baseline, in the same run.

    .venv/bin/python -m bench.start_commands [--seconds 6] [--repeat 1] [--workers 1]
                                             [--json PATH]

Starts embedded PostgreSQL (or uses SYNC_BENCH_DATABASE_URL), two fresh migrated databases,
two `syncctl api` processes on one of them and bench/start_commands/baseline_app.py (the same SQL
transaction per request in raw psycopg, no ORM, domain, auth or coalescing) on the other,
each under uvicorn with --workers processes (the API's SYNC_API_WORKERS; the same number for
both, so neither gets more cores than the other). Then, in one run:

- workloads: distinct users or one hot user at 8 to 512 requests in flight, the baseline and
  then the API for 1 s of warm-up plus --seconds each: req/s, p50, p99 and the ratios;
- storm over two processes: one user's clicks, 100 in flight at each API process, against the
  same load from distinct users (storms.py); exactly one SyncStarted is checked;
- neighbour probe: fresh users clicking every 50 ms, p50/p99 alone and during one user's storm
  of 200 clicks in flight, for 3x --seconds each (a p99 of a few hundred clicks, not of 80;
  neighbour_probe.py, a process of its own);
- history cost: sequential latency of a user with 100,000 prior events against a fresh user.

A figure is PASS only if its load was sustained: the load generator stayed under 90 % of a
core (else the client set the pace) and the probe kept its pace; otherwise MISS.
--repeat R repeats it all and prints the medians. Exits 0 unless a request fails: it is a
report, not a test. Ctrl-C stops every process it started.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import time
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from tempfile import TemporaryDirectory
from types import FrameType
from typing import Any
from uuid import uuid4

import httpx

from bench.common.loadgen import (
    WARMUP_SECONDS,
    BenchFailure,
    Stats,
    Target,
    percentile,
    sequential,
    verdict,
)
from bench.common.services import Services, start_services
from bench.common.wrk_driver import drive, require_wrk
from bench.start_commands.storms import (
    NEIGHBOUR_TARGET,
    neighbour_probe,
    print_storms,
    two_process_storm,
)

# (kind, in flight): (throughput ratio at least, p99 ratio at most); None: reported only.
# Distinct users: no worse than 0.95 of the figures before coalescing (0.99 and 0.86).
WORKLOADS: dict[tuple[str, int], tuple[float | None, float | None]] = {
    ("distinct", 8): (0.94, 1.3),
    ("distinct", 32): (0.82, 1.3),
    ("hot", 8): (0.8, 1.3),
    ("hot", 32): (0.8, 1.3),
    ("hot", 128): (5.0, 0.3),
    ("hot", 512): (None, None),
}
HISTORY_TARGET = 1.10
HISTORY_REQUESTS, HISTORY_ROUNDS = 300, 10
Result = dict[str, Any]


def targets(services: Services) -> tuple[Target, Target]:
    base, api = services.baseline_url, f"{services.api_url}/sync/smart?force_full=false"
    secret, logs = services.secret, services.logs
    return (
        Target("baseline", lambda user: f"{base}/baseline/{user}", secret, logs["baseline"]),
        Target("api", lambda _user: api, secret, logs["api"]),
    )


def run_workload(target: Target, kind: str, concurrency: int, seconds: float) -> Stats:
    users = [f"hot-{uuid4().hex[:12]}"] if kind == "hot" else distinct_users(seconds)
    log(f"{kind} c={concurrency}: {target.name} ...")
    return drive(target, users, concurrency, seconds)


def distinct_users(seconds: float) -> list[str]:
    """Enough fresh users that none clicks twice at up to ~3,000 clicks/s."""
    return [f"user-{uuid4().hex[:12]}" for _ in range(int(3000 * (seconds + WARMUP_SECONDS)))]


def history_cost(api: Target, history_user: str) -> dict[str, float]:
    """Sequential latency of the user with a long history against a fresh one, interleaved."""
    fresh_user = f"fresh-{uuid4().hex[:12]}"
    log(f"history: {HISTORY_REQUESTS} requests each for {history_user} and {fresh_user} ...")
    per_round = HISTORY_REQUESTS // HISTORY_ROUNDS
    samples: dict[str, list[float]] = {"history": [], "fresh": []}
    with httpx.Client(timeout=30) as client:
        for user in (history_user, fresh_user):  # the fresh user's start; then both reuse
            sequential(client, api, user, 10)
            url, headers = api.request(user)
            if not client.post(url, headers=headers).json().get("reused"):
                raise BenchFailure(f"{user}'s requests do not join its live task")
        for number in range(HISTORY_ROUNDS):
            order = [("history", history_user), ("fresh", fresh_user)]
            for key, user in order if number % 2 == 0 else order[::-1]:
                samples[key] += sequential(client, api, user, per_round)
    result = {}
    for key, values in samples.items():
        result[f"{key}_p50_ms"] = statistics.median(values)
        result[f"{key}_p99_ms"] = percentile(values, 99)
    result["p50_ratio"] = result["history_p50_ms"] / result["fresh_p50_ms"]
    result["p99_ratio"] = result["history_p99_ms"] / result["fresh_p99_ms"]
    return result


def measure(services: Services, seconds: float) -> Result:
    """One full measurement: every workload on both targets, the storms, the history cost."""
    baseline, api = targets(services)
    workloads = {}
    for (kind, concurrency), (tput_target, p99_target) in WORKLOADS.items():
        base = run_workload(baseline, kind, concurrency, seconds)
        real = run_workload(api, kind, concurrency, seconds)
        workloads[f"{kind} c={concurrency}"] = {
            "baseline": asdict(base),
            "api": asdict(real),
            "throughput_ratio": real.rps / base.rps,
            "p99_ratio": real.p99_ms / base.p99_ms,
            "targets": [tput_target, p99_target],
            "sustained": base.sustained and real.sustained,
        }
    log("storm over two API processes ...")
    storm = two_process_storm(services, seconds)
    log("neighbour probe, alone and during a storm ...")
    neighbour = neighbour_probe(services, seconds)
    history = history_cost(api, services.history_user)
    return {"workloads": workloads, "storm": storm, "neighbour": neighbour, "history": history}


def judged(value: float, target: float | None, at_least: bool, sustained: bool) -> str:
    if target is None:
        return "-"
    return verdict(value >= target if at_least else value <= target, sustained)


def print_workloads(workloads: Result) -> None:
    head = f"{'workload':<14}{'base r/s':>9}{'api r/s':>9}{'ratio':>7}{'':>6}"
    print(f"{head}{'base p50/p99':>15}{'api p50/p99':>15}{'p99 ratio':>10}{'':>6}{'cpu':>10}")
    for name, w in workloads.items():
        b, a, tput, p99 = w["baseline"], w["api"], w["throughput_ratio"], w["p99_ratio"]
        (tput_target, p99_target), ok = w["targets"], w["sustained"]
        print(
            f"{name:<14}{b['rps']:>9.0f}{a['rps']:>9.0f}{tput:>7.2f}"
            f"{judged(tput, tput_target, True, ok):>6}"
            f"{b['p50_ms']:>8.1f}/{b['p99_ms']:<6.1f}{a['p50_ms']:>8.1f}/{a['p99_ms']:<6.1f}"
            f"{p99:>10.2f}{judged(p99, p99_target, False, ok):>6}"
            f"{b['client_cpu']:>5.2f}/{a['client_cpu']:<4.2f}"
        )
    targets = ", ".join(
        f"{k} c={c}: >= {t} / <= {p}" for (k, c), (t, p) in WORKLOADS.items() if t is not None
    )
    print(f"targets (throughput ratio / p99 ratio): {targets}")
    print("cpu: the load generator's share of a core (base/api); MISS* = not sustained (>= 0.9)")


def print_history(h: dict[str, float]) -> None:
    print(f"history cost, {HISTORY_REQUESTS} sequential reuses each (ms):")
    print(f"  100,000 events: p50 {h['history_p50_ms']:.2f}  p99 {h['history_p99_ms']:.2f}")
    print(f"  fresh user:     p50 {h['fresh_p50_ms']:.2f}  p99 {h['fresh_p99_ms']:.2f}")
    print(
        f"  ratio: p50 {h['p50_ratio']:.2f} {verdict(h['p50_ratio'] <= HISTORY_TARGET)}"
        f" (target <= {HISTORY_TARGET}), p99 {h['p99_ratio']:.2f}"
    )


def summarize(runs: list[Result]) -> Result:
    """Medians of the ratios across repeats; sustained only if every repeat was."""
    workloads = {
        name: {
            "throughput_ratio": statistics.median(
                r["workloads"][name]["throughput_ratio"] for r in runs
            ),
            "p99_ratio": statistics.median(r["workloads"][name]["p99_ratio"] for r in runs),
            "targets": runs[0]["workloads"][name]["targets"],
            "sustained": all(r["workloads"][name]["sustained"] for r in runs),
        }
        for name in runs[0]["workloads"]
    }
    return {
        "workloads": workloads,
        "storm_throughput_ratio": statistics.median(r["storm"]["throughput_ratio"] for r in runs),
        "storm_started_tasks": max(r["storm"]["storm_started_tasks"] for r in runs),
        "storm_sustained": all(r["storm"]["sustained"] for r in runs),
        "neighbour_p99_ratio": statistics.median(r["neighbour"]["p99_ratio"] for r in runs),
        "neighbour_sustained": all(r["neighbour"]["sustained"] for r in runs),
        "history_p50_ratio": statistics.median(r["history"]["p50_ratio"] for r in runs),
    }


def print_summary(summary: Result, repeats: int) -> None:
    print(f"\nmedian ratios over {repeats} repeat(s):")
    for name, w in summary["workloads"].items():
        tput, p99, ok = w["throughput_ratio"], w["p99_ratio"], w["sustained"]
        tput_target, p99_target = w["targets"]
        print(
            f"  {name:<14} throughput {tput:.2f} {judged(tput, tput_target, True, ok)}"
            f"   p99 {p99:.2f} {judged(p99, p99_target, False, ok)}"
        )
    storm = summary["storm_throughput_ratio"]
    ok = storm >= 1.0 and summary["storm_started_tasks"] == 1
    print(
        f"  two-process storm / distinct throughput {storm:.2f} "
        f"{verdict(ok, summary['storm_sustained'])}"
    )
    ratio = summary["neighbour_p99_ratio"]
    print(
        f"  neighbour p99 during / alone {ratio:.2f} "
        f"{verdict(ratio <= NEIGHBOUR_TARGET, summary['neighbour_sustained'])}"
    )
    ratio = summary["history_p50_ratio"]
    print(f"  history cost   p50 ratio {ratio:.2f} {verdict(ratio <= HISTORY_TARGET)}")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="measured seconds per run")
    parser.add_argument("--repeat", type=int, default=1, help="repeat everything R times")
    parser.add_argument("--json", type=Path, help="write the results to this file")
    parser.add_argument(
        "--workers", type=int, default=1, help="processes of the API and of the baseline alike"
    )
    args = parser.parse_args(argv)
    require_wrk()
    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    runs: list[Result] = []
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(TemporaryDirectory(prefix="sync-bench-")))
        services = start_services(stack, tmp, log, args.workers)
        for number in range(1, args.repeat + 1):
            log(f"repeat {number}/{args.repeat}")
            try:
                run = measure(services, args.seconds)
            except BenchFailure as failure:
                raise SystemExit(f"FAILED: {failure}") from None
            print(
                f"\n== repeat {number}/{args.repeat}, {args.seconds:g} s per run, "
                f"{args.workers} worker process(es) each =="
            )
            print_workloads(run["workloads"])
            print_storms(run["storm"], run["neighbour"])
            print_history(run["history"])
            runs.append(run)
    summary = summarize(runs)
    print_summary(summary, args.repeat)
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "summary": summary}, indent=2))
    return 0
