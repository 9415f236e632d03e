"""The load generator of bench/start_commands.py: requests in flight, latencies, percentiles."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from coordinator.api.auth import issue_token

WARMUP_SECONDS = 1.0


class BenchFailure(Exception):
    """A request failed: the run stops, the figures would mean nothing."""


@dataclass
class Stats:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float


@dataclass
class Target:
    """Where one kind of server takes a start request for a user."""

    name: str
    url: Callable[[str], str]
    secret: str
    log: Path

    def request(self, user: str) -> tuple[str, dict[str, str]]:
        # Both targets get a fresh token, so the client does the same work for each.
        return self.url(user), {"Authorization": f"Bearer {issue_token(user, self.secret)}"}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile, q in [0, 100]."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered)) - 1))]


def check(response: httpx.Response, target: Target) -> None:
    """Stop the whole run on any answer but 200/202, with the end of the server's log."""
    if response.status_code not in (200, 202):
        tail = target.log.read_text(errors="replace")[-2000:]
        raise BenchFailure(
            f"{target.name}: HTTP {response.status_code}: {response.text[:500]}\n"
            f"end of {target.log.name}:\n{tail}"
        )


async def drive(target: Target, user: Callable[[], str], concurrency: int, seconds: float) -> Stats:
    """Keep `concurrency` requests in flight; measure those that end inside the window."""
    latencies: list[float] = []
    window_start = time.perf_counter() + WARMUP_SECONDS
    window_end = window_start + seconds

    async def worker() -> None:
        # A client (one keep-alive connection) per worker: httpx's shared pool costs the
        # load generator CPU in proportion to its number of connections.
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=1), timeout=30) as client:
            while (began := time.perf_counter()) < window_end:
                url, headers = target.request(user())
                response = await client.post(url, headers=headers)
                ended = time.perf_counter()
                check(response, target)
                if window_start <= ended <= window_end:
                    latencies.append(ended - began)

    async with asyncio.TaskGroup() as tg:
        for _ in range(concurrency):
            tg.create_task(worker())
    ms = [x * 1000 for x in latencies]
    if not ms:
        raise BenchFailure(f"{target.name}: no request ended inside the {seconds:g} s window")
    return Stats(len(ms), len(ms) / seconds, percentile(ms, 50), percentile(ms, 99))


def sequential(client: httpx.Client, target: Target, user: str, count: int) -> list[float]:
    """Latencies (ms) of `count` requests one after another."""
    url, headers = target.request(user)
    latencies = []
    for _ in range(count):
        began = time.perf_counter()
        response = client.post(url, headers=headers)
        latencies.append((time.perf_counter() - began) * 1000)
        check(response, target)
    return latencies
