"""Open-loop clicks for bench/end_to_end/run.py: POST /sync/smart at a fixed rate, skewed users.

Open loop: the n-th click is due at start + n / rate whether or not earlier ones answered,
like independent people pressing Sync, so a slow system meets a growing queue instead of a
politely slowing client (a closed loop would hide its latency). Every time is counted from
when the click was due (the person pressed Sync), so a wait for a connection, a late send
or a queue in the API is charged to the click. What the clicks saw is kept per click
(due, sent, answered) so that the window's achieved rate and backlog can be told apart
from the latencies (e2e_capacity.py judges them).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx

from bench.end_to_end.probe import ProbeResult
from coordinator.api.auth.tokens import issue_token

TIMEOUT_SECONDS = 10.0
CONNECTIONS = 128  # at most this many requests in flight; more wait for one
# (user, version, monotonic time the click was due, of the POST's answer) -> the view watcher
Observe = Callable[[str, int, float, float], Awaitable[None]]


@dataclass
class ClickStats:
    """What the clicks themselves saw."""

    sent: int = 0
    accepted: int = 0
    started: int = 0
    reused: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    post_ms: list[float] = field(default_factory=list)  # due -> answer, accepted clicks
    send_lag_ms: list[float] = field(default_factory=list)  # due -> handed to the client
    accepted_at: list[float] = field(default_factory=list)  # monotonic, each 202
    finished_at: list[float] = field(default_factory=list)  # monotonic, every outcome
    abandoned: int = 0  # still unanswered when the load generator gave up on them
    start: float = 0.0  # monotonic time the first click was due
    window_seconds: float = 0.0  # len(plan) / rate: the last click is due at its end
    send_seconds: float = 0.0  # first to last send
    last_answer: float = 0.0
    connections: int = 0  # keep-alive connections the load generator opened

    @property
    def window_end(self) -> float:
        return self.start + self.window_seconds


def skewed_plan(users: list[str], count: int, skew: float, seed: int) -> list[str]:
    """`count` clicks; the user of rank k clicks with weight 1 / k**skew (Zipf-like)."""
    weights = [1 / rank**skew for rank in range(1, len(users) + 1)]
    return random.Random(seed).choices(users, weights=weights, k=count)


def tokens_for(users: list[str], secret: str) -> dict[str, dict[str, str]]:
    """Headers per user, made before the clock starts."""
    return {u: {"Authorization": f"Bearer {issue_token(u, secret, 3600)}"} for u in set(users)}


class Connections:
    """A fixed set of one-connection httpx clients, opened before the clock starts.

    One AsyncClient with hundreds of connections and queued requests costs its pool CPU
    per request in proportion to them, and a client made mid-run costs an SSL context: at
    300/s either made the load generator, not the API, the bottleneck. A request waits for
    a free connection (its latency counts from when it was due, so the wait is charged).
    """

    def __init__(self, base_url: str, size: int) -> None:
        ssl_context = httpx.create_ssl_context()  # one for all: each costs milliseconds
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self._all = [
            httpx.AsyncClient(
                base_url=base_url, limits=limits, timeout=TIMEOUT_SECONDS, verify=ssl_context
            )
            for _ in range(size)
        ]
        self._idle: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
        for client in self._all:
            self._idle.put_nowait(client)

    async def open(self) -> None:
        """Connect every client (GET /healthz) so no request pays for a connect."""
        await asyncio.gather(*(client.get("/healthz") for client in self._all))

    @asynccontextmanager
    async def client(self) -> AsyncIterator[httpx.AsyncClient]:
        client = await self._idle.get()
        try:
            yield client
        finally:
            self._idle.put_nowait(client)

    @property
    def size(self) -> int:
        return len(self._all)

    async def aclose(self) -> None:
        await asyncio.gather(*(client.aclose() for client in self._all))


async def click(
    connections: Connections,
    headers: dict[str, str],
    user: str,
    due: float,
    stats: ClickStats,
    observe: Observe | None,
) -> None:
    """One POST; its latency counts from when it was due (no coordinated omission)."""
    try:
        async with connections.client() as client:
            response = await client.post("/sync/smart?force_full=false", headers=headers)
    except httpx.HTTPError as error:
        stats.errors[type(error).__name__] += 1
        stats.finished_at.append(time.monotonic())
        return
    answered = stats.last_answer = time.monotonic()
    stats.finished_at.append(answered)
    if response.status_code != 202:
        stats.errors[f"HTTP {response.status_code}"] += 1
        return
    body = response.json()
    stats.accepted += 1
    stats.accepted_at.append(answered)
    stats.post_ms.append((answered - due) * 1000)
    stats.reused += bool(body["reused"])
    stats.started += not body["reused"]
    if observe is not None:
        await observe(user, int(body["version"]), due, answered)


async def drive(
    api_url: str,
    plan: list[str],
    headers: dict[str, dict[str, str]],
    rate: float,
    observe: Callable[[Connections], Observe] | None,
    give_up: float = 30.0,
) -> ClickStats:
    """Send the plan open-loop at `rate` per second; wait for every answer (and watcher).

    Clicks still unanswered `give_up` seconds after the last was due are abandoned (counted,
    not waited for), so an overloaded system cannot stretch the run without bound.
    """
    stats = ClickStats(window_seconds=len(plan) / rate)
    connections = Connections(api_url, CONNECTIONS)
    pending: set[asyncio.Task[None]] = set()
    try:
        await connections.open()
        watch = observe(connections) if observe else None
        start = stats.start = time.monotonic()
        for number, user in enumerate(plan):
            due = start + number / rate
            if (delay := due - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            stats.send_lag_ms.append((time.monotonic() - due) * 1000)
            stats.sent += 1
            pending.add(
                asyncio.create_task(click(connections, headers[user], user, due, stats, watch))
            )
        stats.send_seconds = time.monotonic() - start
        left = max(0.0, stats.window_end + give_up - time.monotonic())
        _, late = await asyncio.wait(pending, timeout=left) if pending else (set(), set())
        for task in late:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        stats.abandoned = stats.sent - len(stats.finished_at)  # a watcher may be what hung
    finally:
        stats.connections = connections.size
        await connections.aclose()
    return stats


class ApiWatcher:
    """The other probe: GET /sync/status?min_version=V right after the POST's answer.

    The API re-reads the view every 20 ms while it waits, so this adds 0-20 ms of its own
    and one query per 20 ms per waiting command to the API process being measured.
    """

    def __init__(self, headers: dict[str, dict[str, str]], sample: float, seed: int) -> None:
        self.result = ProbeResult()
        self._headers = headers
        self._sample = sample
        self._random = random.Random(seed)

    def bind(self, connections: Connections) -> Observe:
        async def observe(user: str, version: int, clicked: float, answered: float) -> None:
            if self._random.random() >= self._sample:
                return
            try:
                async with connections.client() as client:
                    response = await client.get(
                        f"/sync/status?min_version={version}", headers=self._headers[user]
                    )
            except httpx.HTTPError:
                self.result.unseen += 1
                return
            seen = time.monotonic()
            if response.status_code == 200 and response.json()["caught_up"]:
                self.result.latencies_ms.append((seen - clicked) * 1000)
                self.result.answer_ms.append((seen - answered) * 1000)
            else:
                self.result.unseen += 1

        return observe


def sql_observer(
    submit: Callable[[str, int, float, float], None], sample: float, seed: int
) -> Observe:
    """Hand a sample of commands to the SQL probe process (a queue put, no waiting)."""
    rng = random.Random(seed)

    async def observe(user: str, version: int, clicked: float, answered: float) -> None:
        if rng.random() < sample:
            submit(user, version, clicked, answered)

    return observe
