"""What open status streams cost: idle CPU of the API, and commit-to-stream delivery time.

    python -m bench.status_stream [--streams 200] [--rounds 5]

One `syncctl api` on a fresh database. Baselines measured in the same run: the API's idle
CPU with no stream open, and delivery to a single stream. Then N streams of N users stay
open: the API's CPU over the same idle time (heartbeats only: no stream polls), and rounds
in which one projector-style transaction writes all N users' status rows (so one NOTIFY names
them all) and every stream's arrival of the new version is timed from the commit. Prints
medians over the rounds and ratios against the baselines. The client runs on the same
machine, so its own parsing is part of the times. Needs nothing but this repository.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

from bench.common.services import ROOT, fresh_database, server_url, stop_process
from coordinator.api.auth.tokens import issue_token
from coordinator.dev.embedded import free_port
from coordinator.dev.processes import wait_ready
from projections.status_view import StatusRow
from projections.store import ProjectionStore

IDLE_SECONDS = 10.0
SECRET = "bench-status-stream-secret-0123456789abcdef"


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_api(stack: ExitStack, database: str, log: Path) -> tuple[str, int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNC_")}
    env.update(
        SYNC_DATABASE_URL=database,
        SYNC_JWT_SECRET=SECRET,
        SYNC_API_PORT=str(port),
        SYNC_STREAM_HEARTBEAT_SECONDS="5",
    )
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "coordinator.cli", "api"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    stack.callback(stop_process, process)
    url = f"http://127.0.0.1:{port}"
    wait_ready(f"{url}/readyz", process, 60, log)
    return url, process.pid


class Streams:
    """N open streams; `arrived[user][version]` is when each version reached its stream."""

    def __init__(self, url: str, users: list[str]) -> None:
        self.url, self.users = url, users
        self.arrived: dict[str, dict[int, float]] = {u: {} for u in users}
        self.opened = 0

    async def follow(self, client: httpx.AsyncClient, user: str) -> None:
        headers = {"Authorization": f"Bearer {issue_token(user, SECRET, 3600)}"}
        async with client.stream("GET", f"{self.url}/sync/status/stream", headers=headers) as r:
            assert r.status_code == 200, await r.aread()
            self.opened += 1
            async for line in r.aiter_lines():
                if line.startswith("id: "):
                    self.arrived[user][int(line[4:])] = time.monotonic()


def write_rows(store: ProjectionStore, users: list[str], version: int) -> float:
    """One projector-style transaction writing every user's row; the moment it committed."""
    with store.transaction() as tx:
        tx.save([StatusRow(user_id=u, status="running", last_version=version) for u in users], [])
    return time.monotonic()


async def measure(url: str, pid: int, database: str, count: int, rounds: int) -> dict[str, float]:
    users = [f"bench-stream-{count}-{n}" for n in range(count)]
    streams = Streams(url, users)
    store = ProjectionStore(database)
    limits = httpx.Limits(max_connections=count + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=None), limits=limits) as client:
        tasks = [asyncio.create_task(streams.follow(client, u)) for u in users]
        while streams.opened < count:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        before = cpu_seconds(pid)
        await asyncio.sleep(IDLE_SECONDS)
        idle_cpu = (cpu_seconds(pid) - before) / IDLE_SECONDS
        medians, worst = [], []
        for version in range(1, rounds + 1):
            committed = await asyncio.to_thread(write_rows, store, users, version)
            deadline = time.monotonic() + 30
            while not all(version in streams.arrived[u] for u in users):
                assert time.monotonic() < deadline, "not every stream got the row in 30 s"
                await asyncio.sleep(0.005)
            delays = sorted(streams.arrived[u][version] - committed for u in users)
            medians.append(statistics.median(delays))
            worst.append(delays[-1])
            await asyncio.sleep(0.3)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    store.close()
    return {
        "idle_cpu": idle_cpu,
        "median_ms": statistics.median(medians) * 1000,
        "last_ms": statistics.median(worst) * 1000,
    }


def idle_cpu_without_streams(pid: int) -> float:
    before = cpu_seconds(pid)
    time.sleep(IDLE_SECONDS)
    return (cpu_seconds(pid) - before) / IDLE_SECONDS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        server = server_url(stack, Path(tmp), print)
        database = fresh_database(stack, server, "bench_stream")
        url, pid = start_api(stack, database, Path(tmp) / "api.log")
        idle = idle_cpu_without_streams(pid)
        one = asyncio.run(measure(url, pid, database, 1, args.rounds))
        many = asyncio.run(measure(url, pid, database, args.streams, args.rounds))
    print(f"API idle CPU, no stream open:        {idle:6.1%} of a core")
    print(f"API idle CPU, {args.streams:4d} streams open:     {many['idle_cpu']:6.1%} of a core")
    print(f"commit -> stream, 1 stream:          median {one['median_ms']:7.1f} ms")
    print(
        f"commit -> stream, {args.streams:4d} streams:     median {many['median_ms']:7.1f} ms, "
        f"last stream {many['last_ms']:7.1f} ms "
        f"({many['median_ms'] / one['median_ms']:.1f}x / {many['last_ms'] / one['median_ms']:.1f}x"
        " the single stream's median)"
    )
