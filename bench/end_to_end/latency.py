"""Part A of bench/end_to_end/run.py: click-to-view latency under an open-loop load.

Baseline in the same run: the same pipeline and probe at a trickle (--baseline-rate), which
is what the path costs when nothing queues; then the load (--rate for --seconds). Each
phase also records whether the load was sustained (e2e_capacity.py); e2e_report.py prints
and judges, e2e_max_rate.py searches for the highest sustained rate on the same pipeline.
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

from bench.common.services import libpq
from bench.end_to_end.capacity import BacklogSampler, Capacity, judge
from bench.end_to_end.clicks import (
    ApiWatcher,
    ClickStats,
    drive,
    skewed_plan,
    sql_observer,
    tokens_for,
)
from bench.end_to_end.cpu import CpuMeter, Times, usage
from bench.end_to_end.probe import ProbeResult, SqlProbe
from bench.end_to_end.stack import Backends, Log, Pipeline, check_alive, start_pipeline
from bench.end_to_end.stages import StageWatcher, stages

STATUS = "SELECT last_version FROM sync_status WHERE user_id = %s"


@dataclass
class Phase:
    name: str
    rate: float
    clicks: ClickStats
    view: ProbeResult
    capacity: Capacity
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
    dsn = libpq(pipeline.database)
    with ExitStack() as cleanup:
        backlog = BacklogSampler(dsn)
        cleanup.callback(backlog.stop)
        if args.probe == "api":
            api = ApiWatcher(headers, args.sample, args.seed)
            before = meter.snapshot()
            clicks = asyncio.run(drive(pipeline.api_url, plan, headers, rate, api.bind))
            cpu = usage(before, meter.snapshot())
            capacity = judge(clicks, rate, backlog, args.grace)
            return Phase(name, rate, clicks, api.result, capacity, cpu)
        probe = SqlProbe(dsn, args.interval_ms / 1000)
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
        capacity = judge(clicks, rate, backlog, args.grace)
        view = probe.finish()
        split = stages(view, watcher.finish()) if watcher else {}
    return Phase(name, rate, clicks, view, capacity, cpu, split)


def users_for(kind: str, count: int) -> list[str]:
    """A fresh population: nobody has a running task yet."""
    tag = uuid4().hex[:6]
    return [f"{kind}-{tag}-{n:05d}" for n in range(count)]


def start_measured(
    stack: ExitStack, backends: Backends, args: Namespace, log: Log
) -> tuple[Pipeline, CpuMeter]:
    """Start the system and warm it up; a CPU meter over its processes."""
    pipeline = start_pipeline(stack, backends, worker_settings(args), set(args.profile), log)
    warm_up(pipeline, log)
    pids = {name: p.pid for name, p in pipeline.processes.items()}
    meter = CpuMeter(
        {**pids, "tansu": backends.broker_pid, "loadgen": os.getpid()}, backends.pgdata
    )
    return pipeline, meter


def load_phase(
    pipeline: Pipeline,
    meter: CpuMeter,
    name: str,
    rate: float,
    seconds: float,
    args: Namespace,
    log: Log,
) -> Phase:
    """One phase over a fresh population of --users, clicks spread Zipf-like (--skew)."""
    plan = skewed_plan(users_for(name, args.users), round(rate * seconds), args.skew, args.seed)
    log(f"A {name}: {len(plan):,} clicks at {rate:g}/s over {len(set(plan)):,} users ...")
    phase = run_phase(pipeline, meter, name, plan, rate, args)
    check_alive(pipeline.processes, pipeline.logs)
    return phase


def measure_latency(stack: ExitStack, backends: Backends, args: Namespace, log: Log) -> list[Phase]:
    """Start the system, warm it up, then the trickle and the load."""
    pipeline, meter = start_measured(stack, backends, args, log)
    return [
        load_phase(
            pipeline, meter, "baseline", args.baseline_rate, args.baseline_seconds, args, log
        ),
        load_phase(pipeline, meter, "load", args.rate, args.seconds, args, log),
    ]
