"""What bench/start_commands/run.py measures with: targets, figures, percentiles, verdicts."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from coordinator.api.auth.tokens import issue_token

WARMUP_SECONDS = 1.0


class BenchFailure(Exception):
    """A request failed: the run stops, the figures would mean nothing."""


# Above this share of its cores the load generator, not the server, set the pace: the
# figures of such a run describe the client and are reported as not sustained.
CLIENT_CPU_LIMIT = 0.9


@dataclass
class Stats:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    client_cpu: float  # the load generator's CPU seconds per wall second and per thread

    @property
    def sustained(self) -> bool:
        return self.client_cpu < CLIENT_CPU_LIMIT


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

    def line(self, user: str) -> str:
        """The request as wrk_driver.py reads it: path and token."""
        url, headers = self.request(user)
        parts = urlsplit(url)
        path = f"{parts.path}?{parts.query}" if parts.query else parts.path
        return f"{path} {headers['Authorization'].removeprefix('Bearer ')}"


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


def verdict(ok: bool, sustained: bool = True) -> str:
    return "MISS*" if not sustained else "PASS" if ok else "MISS"
