"""End-to-end benchmark (issue 3): click-to-view latency and projector throughput.

    .venv/bin/python -m bench.end_to_end [--part both|a|b] [--rate 300] [--seconds 20]
        [--probe sql|api] [--events 100000] [--repeat 3] [--profile project] [--logs DIR]
    .venv/bin/python -m bench.end_to_end --part a --find-max [--find-from 50]
        [--step-seconds 8] [--find-budget 300]

A. Click-to-view latency. Embedded PostgreSQL (or SYNC_BENCH_DATABASE_URL) with a fresh
   migrated database, a Tansu broker, and `syncctl api`, `relay`, `project` and `work` (demo
   executor) as subprocesses on a random topic, SYNC_CONSUMER_MAX_POLL_INTERVAL_MS=3000. A
   warm-up click waits for the projector's and the worker's group joins. Then a trickle
   (--baseline-rate, the baseline: the path when nothing queues) and the load: open-loop POST
   /sync/smart at --rate per second for --seconds over --users users chosen Zipf-like
   (--skew), so some click again and again and join their running task. For each command:
   click-to-view, the time from when its POST was due (the click) until sync_status shows
   its version, seen by a probe process polling sync_status in SQL every --interval-ms
   (default), or by GET /sync/status?min_version=V (--probe api; the API re-reads every
   20 ms); answer-to-view beside it. Beside the latency: the offered and achieved rates, POST
   latency, clicks unanswered at the window's end, the backlog and whether it drained within
   --grace s. Target: click-to-view p99 < 150 ms at a load that was sustained (sent on time,
   >= 95% answered in the window, backlog drained); PASS needs both, else MISS and why.
   --find-max instead searches the highest sustained rate in short steps (e2e_max_rate.py).
B. Projector throughput. 100,000 generated events (valid envelopes, in the events table and
   published as the relay does) on a fresh topic; a plain KafkaConsumer reads them all, then
   `syncctl project` (a subprocess) applies them into a fresh database; alternately, --repeat
   times. Target: projector rate / raw rate >= 0.5 (medians).

A report, not a test: exits 0 unless the system breaks. Ctrl-C stops everything it started.
Beside it: e2e_stack.py (services, processes), e2e_clicks.py and e2e_probe.py (load and
probe), e2e_latency.py, e2e_capacity.py, e2e_report.py and e2e_max_rate.py (part A),
e2e_backlog.py and e2e_throughput.py (part B).
"""

from __future__ import annotations

import argparse
import importlib.util
import signal
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from tempfile import TemporaryDirectory
from types import FrameType

from bench.end_to_end.latency import measure_latency
from bench.end_to_end.max_rate import find_max, print_max_rate
from bench.end_to_end.report import print_latency
from bench.end_to_end.stack import start_backends
from bench.end_to_end.throughput import measure_throughput, print_throughput


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def crc_note() -> str:
    """Whether kafka-python checks CRC32C in C (the `crc32c` package) or in pure Python."""
    if importlib.util.find_spec("crc32c") is not None:
        return "crc32c installed: CRC32C in C"
    return (
        "crc32c NOT installed: kafka-python checks CRC32C in pure Python, raw and projector alike"
    )


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--part", choices=["both", "a", "b"], default="both")
    add("--rate", type=float, default=300.0, help="A: clicks per second under load")
    add("--seconds", type=float, default=20.0, help="A: seconds of load")
    add("--users", type=int, default=2000, help="A: users the clicks are spread over")
    add("--skew", type=float, default=0.8, help="A: Zipf exponent of the users' click counts")
    add("--baseline-rate", type=float, default=5.0, help="A: clicks per second, trickle")
    add("--baseline-seconds", type=float, default=6.0)
    add("--probe", choices=["sql", "api"], default="sql", help="A: how the view is watched")
    add("--sample", type=float, default=1.0, help="A: fraction of commands watched")
    add("--stages", action="store_true", help="A: also split latency at the topic")
    add("--interval-ms", type=float, default=2.0, help="A: SQL probe polling interval")
    add("--demo-messages", type=int, default=200, help="A: SYNC_DEMO_MESSAGES")
    add("--demo-pace", type=float, default=50.0, help="A: SYNC_DEMO_PACE (messages/s)")
    add("--worker-concurrency", type=int, default=16, help="A: SYNC_WORKER_CONCURRENCY")
    add("--grace", type=float, default=5.0, help="A: seconds after the window to drain")
    add("--find-max", action="store_true", help="A: search the highest sustained rate instead")
    add("--find-from", type=float, default=50.0, help="A: --find-max's first rate")
    add("--find-refine", type=int, default=2, help="A: --find-max's bisection steps")
    add("--find-budget", type=float, default=300.0, help="A: --find-max's seconds at most")
    add("--step-seconds", type=float, default=8.0, help="A: seconds of load per search step")
    add("--events", type=int, default=100_000, help="B: size of the backlog")
    add("--backlog-users", type=int, default=10_000, help="B: users in the backlog")
    add("--repeat", type=int, default=3, help="B: raw/projector pairs")
    add(
        "--profile",
        action="append",
        default=[],
        choices=["api", "relay", "project", "work"],
        help="run this syncctl process under cProfile (.prof beside its log; see --logs)",
    )
    add("--logs", type=Path, help="keep logs and profiles here (default: a temporary dir)")
    add("--seed", type=int, default=3)
    return parser.parse_args(argv)


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace, stack: ExitStack) -> None:
    tmp = Path(stack.enter_context(TemporaryDirectory(prefix="sync-e2e-")))
    logs = args.logs or tmp
    logs.mkdir(parents=True, exist_ok=True)
    backends = start_backends(stack, tmp, logs, log)
    if args.part in ("both", "a"):
        with ExitStack() as pipeline:  # stopped before part B starts
            if args.find_max:
                steps = find_max(pipeline, backends, args, log)
            else:
                phases = measure_latency(pipeline, backends, args, log)
        if args.find_max:
            print_max_rate(steps, args)
        else:
            print_latency(phases, args)
        sys.stdout.flush()
    if args.part in ("both", "b"):
        runs = measure_throughput(stack, backends, args, log)
        print_throughput(runs, args.events, crc_note())


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    print(f"bench/end_to_end/run.py {' '.join(sys.argv[1:])}".rstrip())
    with ExitStack() as stack:
        try:
            run(args, stack)
        except KeyboardInterrupt:
            log("interrupted; stopping everything this run started")
            return 130
    return 0
