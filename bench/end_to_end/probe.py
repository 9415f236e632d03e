"""When does the status view show a command? A probe process polling sync_status in SQL.

The load generator hands over (user, version, monotonic times the click was due and the
POST answered); the probe, in a process of its own so neither its GIL nor its event loop is
the load generator's, reads `last_version` of every user still waiting with one indexed
query per round, every `interval` seconds, and records for each command the view now covers
`seen - clicked` (click-to-view, the figure judged) and `seen - answered` (answer-to-view).
CLOCK_MONOTONIC is system-wide on Linux, so the two processes' times compare directly.
A latency is an upper bound: the row became visible after the previous round's query began
and before this round's answer, so the resolution is the interval plus one round trip.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import signal
import time
from dataclasses import dataclass, field
from multiprocessing.context import SpawnProcess
from typing import Any

import psycopg

LAST_VERSIONS = "SELECT user_id, last_version FROM sync_status WHERE user_id = ANY(%s)"
Waiting = dict[str, list[tuple[int, float, float]]]  # user -> (version, clicked, answered)


@dataclass
class ProbeResult:
    """Milliseconds until the view showed a command's version."""

    latencies_ms: list[float] = field(default_factory=list)  # from the click (POST due)
    answer_ms: list[float] = field(default_factory=list)  # from the POST's answer
    # (user, version, clicked, answered, seen) of each command seen, monotonic (SQL probe only)
    seen: list[tuple[str, int, float, float, float]] = field(default_factory=list)
    unseen: int = 0  # commands the view had not shown when the probe gave up
    rounds: int = 0
    query_ms: float = 0.0  # mean time of one round's query


def _take(inbox: Any, waiting: Waiting) -> bool:
    """Move every sample waiting in the queue into `waiting`; True once the end mark came."""
    while True:
        try:
            sample = inbox.get_nowait()
        except queue.Empty:
            return False
        if sample is None:
            return True
        user, version, clicked, answered = sample
        waiting.setdefault(user, []).append((version, clicked, answered))


def _round(conn: psycopg.Connection[Any], waiting: Waiting, result: ProbeResult) -> None:
    """One query for all waiting users; settle each command its user's row now covers."""
    began = time.monotonic()
    rows = conn.execute(LAST_VERSIONS, (list(waiting),)).fetchall()
    seen = time.monotonic()
    result.rounds += 1
    result.query_ms += (seen - began) * 1000
    for user, last_version in rows:
        commands = waiting[user]
        done = [(user, v, c, a, seen) for v, c, a in commands if v <= last_version]
        result.seen += done
        result.latencies_ms += [(seen - c) * 1000 for _, _, c, _, _ in done]
        result.answer_ms += [(seen - a) * 1000 for _, _, _, a, _ in done]
        left = [(v, c, a) for v, c, a in commands if v > last_version]
        if left:
            waiting[user] = left
        else:
            del waiting[user]


def probe_main(dsn: str, inbox: Any, outbox: Any, interval: float, give_up: float) -> None:
    """Poll until the end mark came and nothing waits, or `give_up` seconds after the mark."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us by our handle
    waiting: Waiting = {}
    result = ProbeResult()
    ended_at: float | None = None
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(LAST_VERSIONS, ([],))
        outbox.put("ready")
        while True:
            if _take(inbox, waiting) and ended_at is None:
                ended_at = time.monotonic()
            if waiting:
                _round(conn, waiting, result)
            if ended_at is not None and (not waiting or time.monotonic() > ended_at + give_up):
                break
            time.sleep(interval)
    result.unseen = sum(len(v) for v in waiting.values())
    result.query_ms /= max(1, result.rounds)
    outbox.put(result)


class SqlProbe:
    """The parent's handle on one probe process for one phase of the benchmark."""

    def __init__(self, dsn: str, interval: float, give_up: float = 15.0) -> None:
        context = mp.get_context("spawn")
        self._inbox: Any = context.Queue()
        self._outbox: Any = context.Queue()
        self._process: SpawnProcess = context.Process(
            target=probe_main,
            args=(dsn, self._inbox, self._outbox, interval, give_up),
            daemon=True,
        )
        self._give_up = give_up
        self._process.start()
        if self._outbox.get(timeout=60) != "ready":
            raise RuntimeError("the SQL probe did not start")

    @property
    def pid(self) -> int:
        return self._process.pid or 0

    def submit(self, user: str, version: int, clicked: float, answered: float) -> None:
        self._inbox.put((user, version, clicked, answered))

    def finish(self) -> ProbeResult:
        """Send the end mark and collect the figures."""
        self._inbox.put(None)
        try:
            result: ProbeResult = self._outbox.get(timeout=self._give_up + 30)
        finally:
            self.stop()
        return result

    def stop(self) -> None:
        if self._process.is_alive():
            self._process.terminate()
        self._process.join(5)
