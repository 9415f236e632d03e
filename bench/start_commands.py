"""Benchmark of the start command: `syncctl api` against a bare-SQL baseline, in the same run.

    .venv/bin/python -m bench.start_commands [--seconds 8] [--repeat 1] [--json PATH]

Starts embedded PostgreSQL (or uses SYNC_BENCH_DATABASE_URL), two fresh migrated databases,
`syncctl api` and bench/baseline_app.py (the same SQL transaction in raw psycopg, no ORM,
domain or auth), each under one uvicorn process. For each workload (distinct users or one hot
user, 8 or 32 requests in flight) it drives the baseline and then the API for 1 s of warm-up
plus --seconds, and prints req/s, p50 and p99 with the API/baseline ratios (targets: throughput
>= 0.8, p99 <= 1.3). Then the history cost: sequential latency of a user with 100,000 prior
events against a fresh user, both joining a live task (target: median ratio <= 1.10).
--repeat R repeats it all and prints the medians of the ratios. Always exits 0 unless a request
fails: it is a report, not a test. Ctrl-C stops every process it started.

Beside it: loadgen.py (the client side), services.py (databases and servers), baseline_app.py.
"""

from __future__ import annotations

import argparse
import asyncio
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

from bench.loadgen import BenchFailure, Stats, Target, drive, percentile, sequential
from bench.services import Services, start_services

WORKLOADS = [("distinct", 8), ("distinct", 32), ("hot", 8), ("hot", 32)]
THROUGHPUT_TARGET, P99_TARGET, HISTORY_TARGET = 0.8, 1.3, 1.10
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
    hot = f"hot-{uuid4().hex[:12]}"
    user = (lambda: hot) if kind == "hot" else (lambda: f"user-{uuid4().hex[:12]}")
    log(f"{kind} c={concurrency}: {target.name} ...")
    try:
        return asyncio.run(drive(target, user, concurrency, seconds))
    except* BenchFailure as failures:
        raise failures.exceptions[0] from None


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
    """One full measurement: every workload on both targets, then the history cost."""
    baseline, api = targets(services)
    workloads = {}
    for kind, concurrency in WORKLOADS:
        base = run_workload(baseline, kind, concurrency, seconds)
        real = run_workload(api, kind, concurrency, seconds)
        workloads[f"{kind} c={concurrency}"] = {
            "baseline": asdict(base),
            "api": asdict(real),
            "throughput_ratio": real.rps / base.rps,
            "p99_ratio": real.p99_ms / base.p99_ms,
        }
    return {"workloads": workloads, "history": history_cost(api, services.history_user)}


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def print_workloads(workloads: Result) -> None:
    head = f"{'workload':<14}{'base r/s':>9}{'api r/s':>9}{'ratio':>7}{'':>6}"
    print(f"{head}{'base p50/p99':>15}{'api p50/p99':>15}{'p99 ratio':>10}{'':>6}")
    for name, w in workloads.items():
        b, a, tput, p99 = w["baseline"], w["api"], w["throughput_ratio"], w["p99_ratio"]
        print(
            f"{name:<14}{b['rps']:>9.0f}{a['rps']:>9.0f}{tput:>7.2f}"
            f"{verdict(tput >= THROUGHPUT_TARGET):>6}"
            f"{b['p50_ms']:>8.1f}/{b['p99_ms']:<6.1f}{a['p50_ms']:>8.1f}/{a['p99_ms']:<6.1f}"
            f"{p99:>10.2f}{verdict(p99 <= P99_TARGET):>6}"
        )
    print(f"targets: throughput ratio >= {THROUGHPUT_TARGET}, p99 ratio <= {P99_TARGET}")


def print_history(h: dict[str, float]) -> None:
    print(f"history cost, {HISTORY_REQUESTS} sequential reuses each (ms):")
    print(f"  100,000 events: p50 {h['history_p50_ms']:.2f}  p99 {h['history_p99_ms']:.2f}")
    print(f"  fresh user:     p50 {h['fresh_p50_ms']:.2f}  p99 {h['fresh_p99_ms']:.2f}")
    print(
        f"  ratio: p50 {h['p50_ratio']:.2f} {verdict(h['p50_ratio'] <= HISTORY_TARGET)}"
        f" (target <= {HISTORY_TARGET}), p99 {h['p99_ratio']:.2f}"
    )


def summarize(runs: list[Result]) -> Result:
    """Medians of the ratios across repeats."""
    workloads = {
        name: {
            key: statistics.median(run["workloads"][name][key] for run in runs)
            for key in ("throughput_ratio", "p99_ratio")
        }
        for name in runs[0]["workloads"]
    }
    history = statistics.median(run["history"]["p50_ratio"] for run in runs)
    return {"workloads": workloads, "history_p50_ratio": history}


def print_summary(summary: Result, repeats: int) -> None:
    print(f"\nmedian ratios over {repeats} repeat(s):")
    for name, w in summary["workloads"].items():
        tput, p99 = w["throughput_ratio"], w["p99_ratio"]
        print(
            f"  {name:<14} throughput {tput:.2f} {verdict(tput >= THROUGHPUT_TARGET)}"
            f"   p99 {p99:.2f} {verdict(p99 <= P99_TARGET)}"
        )
    ratio = summary["history_p50_ratio"]
    print(f"  history cost   p50 ratio {ratio:.2f} {verdict(ratio <= HISTORY_TARGET)}")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per run")
    parser.add_argument("--repeat", type=int, default=1, help="repeat everything R times")
    parser.add_argument("--json", type=Path, help="write the results to this file")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    runs: list[Result] = []
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(TemporaryDirectory(prefix="sync-bench-")))
        services = start_services(stack, tmp, log)
        for number in range(1, args.repeat + 1):
            log(f"repeat {number}/{args.repeat}")
            try:
                run = measure(services, args.seconds)
            except BenchFailure as failure:
                raise SystemExit(f"FAILED: {failure}") from None
            print(f"\n== repeat {number}/{args.repeat}, {args.seconds:g} s per run ==")
            print_workloads(run["workloads"])
            print_history(run["history"])
            runs.append(run)
    summary = summarize(runs)
    print_summary(summary, args.repeat)
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "summary": summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
