"""Part A of bench/end_to_end.py: click-to-view latency under an open-loop load.

Baseline in the same run: the same pipeline and probe at a trickle (--baseline-rate), which
is what the path costs when nothing queues; then the load (--rate for --seconds).
"""

from __future__ import annotations

import asyncio
import os
import time
from argparse import Namespace
from contextlib import ExitStack
from dataclasses import dataclass, field
from uuid import uuid4

import httpx
import psycopg

from bench.e2e_clicks import ApiWatcher, ClickStats, drive, skewed_plan, sql_observer, tokens_for
from bench.e2e_cpu import CpuMeter, Times, format_usage, usage
from bench.e2e_probe import ProbeResult, SqlProbe
from bench.e2e_stack import Backends, Log, Pipeline, check_alive, start_pipeline
from bench.e2e_stages import StageWatcher, format_stages, stages
from bench.loadgen import percentile
from bench.services import libpq

TARGET_P99_MS = 150.0
STATUS = "SELECT last_version FROM sync_status WHERE user_id = %s"


@dataclass
class Phase:
    name: str
    rate: float
    clicks: ClickStats
    view: ProbeResult
    cpu: Times  # percent of one core per process while the clicks ran
    stages: dict[str, list[float]] = field(default_factory=dict)  # --stages


def worker_settings(args: Namespace) -> dict[str, str]:
    """A demo executor whose tasks take a few seconds and report progress twice a second."""
    return {
        "SYNC_DEMO_MESSAGES": str(args.demo_messages),
        "SYNC_DEMO_PACE": str(args.demo_pace),
        "SYNC_WORKER_CONCURRENCY": str(args.worker_concurrency),
        "SYNC_WORKER_GRACE_SECONDS": "1",
    }


def _wait_version(
    conn: psycopg.Connection[tuple[int]],
    pipeline: Pipeline,
    user: str,
    version: int,
    timeout: float,
) -> float | None:
    """Seconds until the user's row reaches `version`, or None after `timeout`."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        check_alive(pipeline.processes, pipeline.logs)
        row = conn.execute(STATUS, (user,)).fetchone()
        if row and row[0] >= version:
            return time.monotonic() - began
        time.sleep(0.05)
    return None


def warm_up(pipeline: Pipeline, log: Log) -> None:
    """One click; wait for the projector (view shows it) and the worker (progress follows)."""
    user = f"warmup-{uuid4().hex[:8]}"
    headers = tokens_for([user], pipeline.secret)[user]
    answer = httpx.post(f"{pipeline.api_url}/sync/smart", headers=headers, timeout=10)
    answer.raise_for_status()
    version = int(answer.json()["version"])
    with psycopg.connect(libpq(pipeline.database), autocommit=True) as conn:
        took = _wait_version(conn, pipeline, user, version, 120)
        if took is None:
            raise SystemExit("the projector never showed the warm-up click (group join?)")
        log(f"projector assigned: the warm-up click showed after {took:.1f} s")
        took = _wait_version(conn, pipeline, user, version + 1, 60)
    if took is None:
        log("warning: no progress from the worker within 60 s")
    else:
        log(f"worker assigned: progress of the warm-up task after another {took:.1f} s")


def run_phase(
    pipeline: Pipeline, meter: CpuMeter, name: str, plan: list[str], rate: float, args: Namespace
) -> Phase:
    """Send `plan` open-loop at `rate`; the chosen probe watches for the view."""
    headers = tokens_for(plan, pipeline.secret)
    if args.probe == "api":
        api = ApiWatcher(headers, args.sample, args.seed)
        before = meter.snapshot()
        clicks = asyncio.run(drive(pipeline.api_url, plan, headers, rate, api.bind))
        return Phase(name, rate, clicks, api.result, usage(before, meter.snapshot()))
    with ExitStack() as cleanup:
        probe = SqlProbe(libpq(pipeline.database), args.interval_ms / 1000)
        cleanup.callback(probe.stop)
        meter.add("probe", probe.pid)
        watcher = StageWatcher(pipeline.bootstrap, pipeline.topic) if args.stages else None
        if watcher is not None:
            cleanup.callback(watcher.close)
            meter.add("stages", watcher.pid)
        observe = sql_observer(probe.submit, args.sample, args.seed)
        before = meter.snapshot()
        clicks = asyncio.run(drive(pipeline.api_url, plan, headers, rate, lambda _: observe))
        cpu = usage(before, meter.snapshot())
        view = probe.finish()
        split = stages(view, watcher.finish()) if watcher else {}
    return Phase(name, rate, clicks, view, cpu, split)


def measure_latency(stack: ExitStack, backends: Backends, args: Namespace, log: Log) -> list[Phase]:
    """Start the system, warm it up, then the trickle and the load."""
    pipeline = start_pipeline(stack, backends, worker_settings(args), set(args.profile), log)
    warm_up(pipeline, log)
    pids = {name: p.pid for name, p in pipeline.processes.items()}
    meter = CpuMeter(
        {**pids, "tansu": backends.broker_pid, "loadgen": os.getpid()}, backends.pgdata
    )
    phases = []
    trickle = [f"idle-{uuid4().hex[:6]}-{n:05d}" for n in range(args.users)]
    users = [f"user-{uuid4().hex[:6]}-{n:05d}" for n in range(args.users)]
    for name, population, rate, seconds in (
        ("baseline", trickle, args.baseline_rate, args.baseline_seconds),
        ("load", users, args.rate, args.seconds),
    ):
        plan = skewed_plan(population, round(rate * seconds), args.skew, args.seed)
        log(f"A {name}: {len(plan):,} clicks at {rate:g}/s over {len(set(plan)):,} users ...")
        phases.append(run_phase(pipeline, meter, name, plan, rate, args))
        check_alive(pipeline.processes, pipeline.logs)
    return phases


def _ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q):.1f}" if values else "-"


def print_latency(phases: list[Phase], args: Namespace) -> None:
    how = (
        f"SQL probe process polling sync_status every {args.interval_ms:g} ms"
        if args.probe == "sql"
        else "GET /sync/status?min_version=V (API re-reads every 20 ms)"
    )
    print(f"\nA. click-to-view latency: POST answer -> view shows its version ({how})")
    print(
        f"{'phase':<9}{'target/s':>9}{'sent/s':>8}{'ok/s':>8}{'started':>8}{'reused':>8}"
        f"{'errors':>7}{'POST p50':>10}{'p99':>9} | {'view n':>6}{'p50':>7}{'p95':>7}"
        f"{'p99':>7}{'max':>8}{'unseen':>7}"
    )
    for p in phases:
        c, v = p.clicks, p.view.latencies_ms
        print(
            f"{p.name:<9}{p.rate:>9g}{c.sent / max(c.send_seconds, 1e-9):>8.0f}"
            f"{c.accepted / max(c.wall_seconds, 1e-9):>8.0f}{c.started:>8}{c.reused:>8}"
            f"{sum(c.errors.values()):>7}{_ms(c.post_ms, 50):>10}{_ms(c.post_ms, 99):>9} | "
            f"{len(v):>6}{_ms(v, 50):>7}{_ms(v, 95):>7}{_ms(v, 99):>7}"
            f"{(f'{max(v):.1f}' if v else '-'):>8}{p.view.unseen:>7}"
        )
    for p in phases:
        lag = p.clicks.send_lag_ms
        extra = f", probe rounds {p.view.rounds}, query {p.view.query_ms:.2f} ms" * bool(
            p.view.rounds
        )
        errors = dict(p.clicks.errors) or "none"
        print(
            f"  {p.name}: send lag p50/p99 {_ms(lag, 50)}/{_ms(lag, 99)} ms, "
            f"{p.clicks.connections} connections{extra}; errors {errors}"
        )
        print(f"    CPU while clicking (% of one core): {format_usage(p.cpu)}")
        if p.stages:
            print(f"    {format_stages(p.stages)}")
    print(verdict(phases[-1]))


def verdict(load: Phase) -> str:
    """PASS only if the target holds and the load was really offered and answered."""
    c, v = load.clicks, load.view
    p99 = percentile(v.latencies_ms, 99) if v.latencies_ms else float("inf")
    problems = [f"view p99 {p99:.1f} ms"] if p99 >= TARGET_P99_MS else []
    if c.sent / max(c.send_seconds, 1e-9) < 0.95 * load.rate:
        problems.append("load generator sent under 95% of the rate")
    if c.errors or v.unseen:
        problems.append(f"{sum(c.errors.values())} errors, {v.unseen} never seen")
    result = "MISS: " + "; ".join(problems) if problems else "PASS"
    if c.send_lag_ms and percentile(c.send_lag_ms, 99) > 50:
        result += " (warning: sends ran late, send lag p99 > 50 ms: the load came in bursts)"
    return f"  target p99 < {TARGET_P99_MS:g} ms at {load.rate:g}/s: {result}"
