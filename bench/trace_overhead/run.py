"""CPU per start request of `syncctl api`: before tracing existed, traces off, traces on.

    .venv/bin/python -m bench.trace_overhead --before DIR [--after DIR] [--seconds 5] [--repeat 3]

--before holds the code before tracing (e.g. `git archive <commit> | tar -x -C DIR`), --after
the code with it (default: this checkout); each API runs with this virtualenv and
PYTHONPATH=DIR, so the two differ only by the change under test. Each variant is one
`syncctl api` process on its own fresh database of one embedded PostgreSQL; "on" exports
every span with the OTLP/HTTP exporter to a sink in this process that answers 200. wrk
drives hot (one user) and distinct users at 8 in flight, the variants interleaved in each
repeat; the figure is the API process's CPU time (utime + stime from /proc) per request
handled. Prints medians and their ratios to "before"; MISS when the load generator was the
bottleneck. A report, not a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from tempfile import TemporaryDirectory
from uuid import uuid4

from bench.common.loadgen import WARMUP_SECONDS, Target
from bench.common.services import fresh_database, server_url, stop_process
from bench.common.wrk_driver import drive, require_wrk
from bench.start_commands.run import distinct_users
from coordinator.dev.embedded import free_port
from coordinator.dev.processes import wait_ready

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = ("before", "off", "on")
WORKLOADS = (("hot", 8), ("distinct", 8))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def otlp_sink() -> Iterator[str]:
    """Accepts OTLP/HTTP exports and drops them."""

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{port}/v1/traces"
    finally:
        server.shutdown()


def start_api(
    stack: ExitStack, variant: str, database: str, secret: str, code: Path, sink: str, log: Path
) -> tuple[str, int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNC_", "OTEL_"))}
    env |= {"SYNC_DATABASE_URL": database, "SYNC_JWT_SECRET": secret, "SYNC_API_PORT": str(port)}
    env["PYTHONPATH"] = str(code)
    if variant == "on":
        env |= {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": sink}
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "coordinator.cli", "api"],
            env=env,
            cwd=code,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    stack.callback(stop_process, process)
    url = f"http://127.0.0.1:{port}"
    wait_ready(f"{url}/readyz", process, 60, log)
    return url, process.pid


def start_url(base: str) -> Callable[[str], str]:
    """The start route of one API, whoever the user is (the token names them)."""
    return lambda _user: f"{base}/sync/smart"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="the code before tracing")
    parser.add_argument("--after", type=Path, default=ROOT, help="the code with tracing")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    require_wrk()
    secret = uuid4().hex * 2
    # (workload, variant) -> [(cpu us per request, sustained)]
    samples: dict[tuple[str, str], list[tuple[float, bool]]] = {}
    with ExitStack() as stack, otlp_sink() as sink:
        tmp = Path(stack.enter_context(TemporaryDirectory(prefix="trace-bench-")))
        server = server_url(stack, tmp, log)
        apis = {}
        for variant in VARIANTS:
            database = fresh_database(stack, server, f"trace_{variant}")
            log_file = tmp / f"{variant}.log"
            code = args.before if variant == "before" else args.after
            url, pid = start_api(stack, variant, database, secret, code, sink, log_file)
            apis[variant] = (Target(variant, start_url(url), secret, log_file), pid)
        for number in range(1, args.repeat + 1):
            for kind, concurrency in WORKLOADS:
                order = VARIANTS if number % 2 else VARIANTS[::-1]
                for variant in order:
                    target, pid = apis[variant]
                    users = (
                        [f"hot-{uuid4().hex[:12]}"]
                        if kind == "hot"
                        else distinct_users(args.seconds)
                    )
                    log(f"repeat {number}: {kind} c={concurrency} {variant} ...")
                    before_cpu = cpu_seconds(pid)
                    stats = drive(target, users, concurrency, args.seconds)
                    # drive() warms up first; its requests are counted at the measured rate.
                    used = cpu_seconds(pid) - before_cpu
                    handled = stats.requests + stats.rps * WARMUP_SECONDS
                    samples.setdefault((kind, variant), []).append(
                        (used / handled * 1e6, stats.sustained)
                    )
    print(f"\nAPI CPU per start request (µs), median of {args.repeat} runs of {args.seconds:g} s")
    print(
        f"{'workload':<14}"
        + "".join(f"{v:>10}" for v in VARIANTS)
        + f"{'off/before':>12}{'on/before':>11}"
    )
    for kind, concurrency in WORKLOADS:
        medians = {v: statistics.median(s for s, _ in samples[(kind, v)]) for v in VARIANTS}
        ok = all(ok for v in VARIANTS for _, ok in samples[(kind, v)])
        flag = "" if ok else "  MISS (load generator saturated)"
        spread = "  runs: " + "; ".join(
            f"{v} " + " ".join(f"{x:.0f}" for x, _ in samples[(kind, v)]) for v in VARIANTS
        )
        print(
            f"{kind + f' c={concurrency}':<14}"
            + "".join(f"{medians[v]:>10.0f}" for v in VARIANTS)
            + f"{medians['off'] / medians['before']:>12.3f}"
            + f"{medians['on'] / medians['before']:>11.3f}{flag}"
        )
        print(spread)
    return 0


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
