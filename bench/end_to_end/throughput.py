"""Part B of bench/end_to_end/run.py: the projector's rate against a plain consumer's, one backlog.

Both read the same topic from the beginning in a fresh consumer group with the projector's
consumer settings (max_poll_records 2000, fetch_max_wait_ms 50, the Tansu poll interval).
A rate is counted from the first sight of progress to the end, leaving out what was already
done at first sight, so neither side is charged for its group join:
  raw:       records after the first non-empty poll / time from it to the last record;
  projector: `syncctl project` as a subprocess on a fresh copy of the database; a probe reads
             count(*) and sum(last_version) of sync_status every 50 ms (versions run 1..n per
             user, so the sum is the number of events applied) from the first non-zero sum
             until every user shows its last version.
For scale, each repeat also runs two `syncctl project` processes in one fresh group (the
topic's partitions split between them, as in production scaling): `2 proc/s`, not a target.
kafka-python checks every batch's CRC32C, in pure Python unless the `crc32c` package is
installed; both sides pay it. For scale, each repeat also times the raw consumer with
check_crcs=False (not a target: the projector cannot turn the check off).
"""

from __future__ import annotations

import os
import statistics
import time
from argparse import Namespace
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import psycopg
from kafka import KafkaConsumer

from bench.common.services import fresh_database, libpq
from bench.end_to_end.backlog import make_backlog, publish, store_events
from bench.end_to_end.cpu import CpuMeter, Times, usage
from bench.end_to_end.stack import (
    Backends,
    Log,
    check_alive,
    consumer_settings,
    copy_database,
    new_topic,
    spawn,
)

TARGET_RATIO = 0.5
MAX_RECORDS = 2000  # coordinator/entrypoints/project.py's max_records
FETCH_MAX_WAIT_MS = 50  # core.kafka.event_source.SourceConfig's default
PROGRESS = "SELECT count(*), coalesce(sum(last_version), 0) FROM sync_status"
POLL_SECONDS = 0.05
TIMEOUT_SECONDS = 900.0


@dataclass
class Drain:
    """How fast one side went through the backlog."""

    records: int  # counted in the rate: the backlog less what was done at first sight
    seconds: float
    cpu: Times  # percent of one core over those seconds

    @property
    def rate(self) -> float:
        if self.records <= 0 or self.seconds <= 0:
            raise SystemExit("the backlog was gone before it was first seen: raise --events")
        return self.records / self.seconds


@dataclass
class Run:
    raw: Drain
    projected: Drain
    unchecked: Drain  # the raw consumer again with check_crcs=False, for scale only
    scaled: Drain  # two projector processes in one group, for scale only

    @property
    def ratio(self) -> float:
        return self.projected.rate / self.raw.rate


@dataclass
class Backlog:
    server: str
    template: str  # database name holding the events, cloned for every projector run
    topic: str
    events: int
    users: int


def prepare(stack: ExitStack, backends: Backends, events: int, users: int, log: Log) -> Backlog:
    """Generate the backlog, store it in a template database and publish it to a topic."""
    log(f"generating {events:,} events for {users:,} users ...")
    histories = make_backlog(events, users)
    template = fresh_database(stack, backends.server, "bench_backlog")
    log("storing them in the events table ...")
    store_events(libpq(template), histories)
    topic = new_topic(backends.bootstrap, "backlog")
    log(f"publishing them to {topic} ...")
    publish(backends.bootstrap, topic, histories, log)
    name = template.rsplit("/", 1)[-1].split("?")[0]
    return Backlog(backends.server, name, topic, events, users)


def raw_consume(backends: Backends, backlog: Backlog, check_crcs: bool = True) -> Drain:
    """A plain KafkaConsumer in a fresh group iterating over every record, nothing else."""
    session = min(backends.max_poll_interval_ms, 10_000)
    consumer = KafkaConsumer(
        backlog.topic,
        bootstrap_servers=backends.bootstrap,
        group_id=f"raw-{uuid4().hex[:10]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_interval_ms=backends.max_poll_interval_ms,
        session_timeout_ms=session,
        heartbeat_interval_ms=max(session // 3, 100),
        max_poll_records=MAX_RECORDS,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        check_crcs=check_crcs,
    )
    meter = CpuMeter({"raw": os.getpid(), "tansu": backends.broker_pid}, None)
    seen, first_seen = 0, 0
    first = end = meter.snapshot()
    deadline = time.monotonic() + TIMEOUT_SECONDS
    try:
        while seen < backlog.events and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for _record in records:
                    seen += 1
            if seen and not first_seen:
                first_seen, first = seen, meter.snapshot()
        end = meter.snapshot()
    finally:
        consumer.close()
    if seen < backlog.events:
        raise SystemExit(f"raw consumer read only {seen:,} of {backlog.events:,} records")
    return Drain(seen - first_seen, end[0] - first[0], usage(first, end))


def project(
    backends: Backends, backlog: Backlog, run: int, profile: bool, processes: int = 1
) -> Drain:
    """`syncctl project` (N processes, one group) on a fresh copy of the database, timed
    through sync_status; cpu `project` is all of them together."""
    with ExitStack() as local:
        database = copy_database(local, backlog.server, backlog.template, "bench_project")
        settings = consumer_settings(backends, database, backlog.topic)
        names = [f"project{n}" for n in range(processes)]
        logs = {name: backends.tmp / f"{name}-backlog-{run}.log" for name in names}
        spawned = {
            name: spawn(local, "project", settings, logs[name], profile=profile and n == 0)
            for n, name in enumerate(names)
        }
        pids = {name: process.pid for name, process in spawned.items()}
        meter = CpuMeter({**pids, "tansu": backends.broker_pid}, backends.pgdata)

        def alive() -> None:
            check_alive(spawned, logs)

        with psycopg.connect(libpq(database), autocommit=True) as conn:
            first_applied, first, end = _watch(conn, backlog, meter, alive)
    cpu = usage(first, end)
    cpu["project"] = sum(cpu.pop(name) for name in names)
    return Drain(backlog.events - first_applied, end[0] - first[0], cpu)


Snapshot = tuple[float, Times]


def _watch(
    conn: psycopg.Connection[tuple[Any, ...]],
    backlog: Backlog,
    meter: CpuMeter,
    alive: Callable[[], None],
) -> tuple[int, Snapshot, Snapshot]:
    """(events applied at first sight, CPU then, CPU when every user shows its last version)."""
    first_applied, first = 0, meter.snapshot()
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        row = conn.execute(PROGRESS).fetchone()
        now = meter.snapshot()
        users, applied = (int(row[0]), int(row[1])) if row else (0, 0)
        if applied and not first_applied:
            first_applied, first = applied, now
        if users == backlog.users and applied == backlog.events:
            return first_applied, first, now
        alive()
        time.sleep(POLL_SECONDS)
    raise SystemExit(f"the projector did not apply the backlog in {TIMEOUT_SECONDS:.0f} s")


def measure_throughput(
    stack: ExitStack, backends: Backends, args: Namespace, log: Log
) -> list[Run]:
    """Prepare once, then raw and projector alternately, --repeat times."""
    events, users, repeat = args.events, args.backlog_users, args.repeat
    backlog = prepare(stack, backends, events, users, log)
    profile = "project" in args.profile
    runs = []
    for run in range(1, repeat + 1):
        log(f"B {run}/{repeat}: raw consumer ...")
        raw = raw_consume(backends, backlog)
        log(f"B {run}/{repeat}: raw {raw.rate:,.0f}/s; projector ...")
        projected = project(backends, backlog, run, profile and run == 1)
        log(f"B {run}/{repeat}: projector {projected.rate:,.0f}/s; raw without CRC checks ...")
        unchecked = raw_consume(backends, backlog, False)
        log(f"B {run}/{repeat}: raw no-CRC {unchecked.rate:,.0f}/s; two projectors ...")
        scaled = project(backends, backlog, run, False, processes=2)
        log(f"B {run}/{repeat}: two projectors {scaled.rate:,.0f}/s")
        runs.append(Run(raw, projected, unchecked, scaled))
    return runs


def print_throughput(runs: list[Run], events: int, crc: str) -> None:
    print(f"\nB. projector throughput, backlog of {events:,} events ({crc})")
    print(
        f"{'run':<7}{'raw/s':>8}{'cpu':>5}{'tansu':>6}{'other':>6}{'proj/s':>8}{'cpu':>5}"
        f"{'pg':>5}{'tansu':>6}{'other':>6}{'ratio':>7}{'':>4}{'raw no-CRC/s':>13}"
        f"{'2 proc/s':>10}{'cpu':>5}{'pg':>5}{'ratio':>7}"
    )
    for number, r in enumerate(runs, start=1):
        raw, projected, scaled = r.raw.cpu, r.projected.cpu, r.scaled.cpu
        print(
            f"{number:<7}{r.raw.rate:>8,.0f}{raw['raw']:>4.0f}%{raw['tansu']:>5.0f}%"
            f"{raw['other']:>5.0f}%{r.projected.rate:>8,.0f}{projected['project']:>4.0f}%"
            f"{projected.get('postgres', 0):>4.0f}%{projected['tansu']:>5.0f}%"
            f"{projected['other']:>5.0f}%{r.ratio:>7.3f}{'':>4}{r.unchecked.rate:>13,.0f}"
            f"{r.scaled.rate:>10,.0f}{scaled['project']:>4.0f}%{scaled.get('postgres', 0):>4.0f}%"
            f"{r.scaled.rate / r.raw.rate:>7.3f}"
        )
    median = statistics.median
    ratio = median(r.ratio for r in runs)
    verdict = "PASS" if ratio >= TARGET_RATIO else "MISS"
    print(
        f"{'median':<7}{median(r.raw.rate for r in runs):>8,.0f}{'':>17}"
        f"{median(r.projected.rate for r in runs):>8,.0f}{'':>22}{ratio:>7.3f} {verdict:<4}"
        f"{median(r.unchecked.rate for r in runs):>13,.0f}"
        f"{median(r.scaled.rate for r in runs):>10,.0f}{'':>10}"
        f"{median(r.scaled.rate / r.raw.rate for r in runs):>7.3f}"
    )
    print(
        f"  target: median projector/raw >= {TARGET_RATIO} (one process); cpu = % of one core"
        " while draining, other = all other processes on the machine; 2 proc = two"
        " `syncctl project` in one group, for scale"
    )
