"""Closed-loop load with wrk: each connection keeps one start request in flight.

wrk (Debian's `wrk`, C on epoll) rather than a Python client: one Python process holding
100+ httpx connections answered in seconds what wrk sees in milliseconds, so the client, not
the server, set the figures. Each request carries its own user's bearer token, read from a
file of "path token" lines written here: one line for a hot user, a fresh user per request
for distinct users. A warm-up run comes first and is not measured.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from bench.common.loadgen import WARMUP_SECONDS, BenchFailure, Stats, Target

# Each thread takes every n-th line, so distinct users are not shared between threads.
SCRIPT = r"""
local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end
function init(args)
  local step, n = tonumber(args[2]), 0
  requests, index = {}, 0
  for line in io.lines(args[1]) do
    if n % step == id then
      local path, token = line:match("^(%S+) (%S+)$")
      local headers = {["Authorization"] = "Bearer " .. token, ["Content-Length"] = "0"}
      requests[#requests + 1] = wrk.format("POST", path, headers)
    end
    n = n + 1
  end
end
function request()
  index = index % #requests + 1
  return requests[index]
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
    .. '"status_errors": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk is needed for this benchmark: apt-get install wrk")
    return path


def drive(
    targets: Target | list[Target], users: list[str], concurrency: int, seconds: float
) -> Stats:
    """`concurrency` connections shared out over the targets, each running for `seconds`."""
    targets = targets if isinstance(targets, list) else [targets]
    with tempfile.TemporaryDirectory(prefix="wrk-") as tmp:
        script = Path(tmp, "start.lua")
        script.write_text(SCRIPT)
        runs = []
        for number, target in enumerate(targets):
            lines = Path(tmp, f"requests-{number}.txt")
            lines.write_text("".join(f"{target.line(user)}\n" for user in users))
            share = concurrency // len(targets) + (number < concurrency % len(targets))
            runs.append((target, lines, share))
        _run(runs, script, WARMUP_SECONDS)
        return _run(runs, script, seconds)


def _run(runs: list[tuple[Target, Path, int]], script: Path, seconds: float) -> Stats:
    wrk, threads = require_wrk(), 0
    before, began = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    processes = []
    for target, lines, connections in runs:
        count = min(2, connections)
        threads += count
        base = "{0.scheme}://{0.netloc}".format(urlsplit(target.url("-")))
        argv = [
            wrk,
            f"-t{count}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "30s",
        ]
        argv += ["-s", str(script), base, "--", str(lines), str(count)]
        processes.append((target, subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)))
    results = [(target, _result(target, process)) for target, process in processes]
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) / wall
    requests = sum(r["requests"] for _, r in results)
    duration = max(r["duration_us"] for _, r in results) / 1e6
    return Stats(
        requests=requests,
        rps=requests / duration,
        # Several processes: the median of their medians, the worst of their p99s.
        p50_ms=sorted(r["p50_us"] for _, r in results)[len(results) // 2] / 1000,
        p99_ms=max(r["p99_us"] for _, r in results) / 1000,
        client_cpu=cpu / threads,
    )


def _result(target: Target, process: subprocess.Popen[str]) -> dict[str, int]:
    out, _ = process.communicate(timeout=600)
    found = [line[4:] for line in out.splitlines() if line.startswith("WRK ")]
    if process.returncode != 0 or not found:
        raise BenchFailure(f"{target.name}: wrk failed ({process.returncode}):\n{out[-2000:]}")
    result: dict[str, int] = json.loads(found[-1])
    if result["status_errors"] or result["socket_errors"]:
        tail = target.log.read_text(errors="replace")[-2000:]
        raise BenchFailure(
            f"{target.name}: {result['status_errors']} non-2xx answers and "
            f"{result['socket_errors']} socket errors\nend of {target.log.name}:\n{tail}"
        )
    return result
