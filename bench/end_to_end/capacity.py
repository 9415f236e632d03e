"""Did the system keep up with the offered clicks? Part A of bench/end_to_end/run.py asks this
before it looks at a latency, because a latency of the clicks a system managed to answer
says nothing about the ones it did not.

The load was sustained when all three hold:
  - the load generator sent on schedule: >= 95% of clicks handed over within 50 ms of due
    (otherwise the generator, not the system, set the rate);
  - the API answered (202) >= 95% of the offered rate inside the window (first click due to
    last click due);
  - the backlog drained: within --grace seconds after the window, and not before the last
    answer came, the events committed but not yet shown in sync_status (outbox included)
    fell to at most half a second of the offered rate (floor 50: the worker's progress
    reports keep a few in flight). A backlog that grew during the window and is still
    there after the grace means the relay or the projector could not keep up.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import psycopg

from bench.end_to_end.clicks import ClickStats

ON_TIME_MS = 50.0
ON_TIME_SHARE = 0.95
ANSWERED_SHARE = 0.95
FLOOR_EVENTS = 50
FLOOR_SECONDS = 0.5
SAMPLE_SECONDS = 0.25
BACKLOG = """
SELECT (SELECT count(*) FROM outbox),
       (SELECT coalesce(sum(s.version - coalesce(v.last_version, 0)), 0)
        FROM streams s LEFT JOIN sync_status v ON v.user_id = s.user_id)
"""


class BacklogSampler:
    """A thread reading (time, outbox rows, events not yet in the view) every quarter second."""

    def __init__(self, dsn: str) -> None:
        self.samples: list[tuple[float, int, int]] = []
        self._dsn = dsn
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="backlog", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with psycopg.connect(self._dsn, autocommit=True) as conn:
            while not self._stop.is_set():
                row = conn.execute(BACKLOG).fetchone()
                if row is not None:
                    self.samples.append((time.monotonic(), int(row[0]), int(row[1])))
                self._stop.wait(SAMPLE_SECONDS)

    def wait_drained(self, after: float, until: float, floor: float) -> float | None:
        """Seconds from `after` to the first sample at or under `floor`; None past `until`."""
        while True:
            for at, _, behind in self.samples:
                if at >= after and behind <= floor:
                    return at - after
            if time.monotonic() > until or not self._thread.is_alive():
                return None
            time.sleep(SAMPLE_SECONDS / 2)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def wait_for_backlog(dsn: str, timeout: float, floor: int = FLOOR_EVENTS) -> bool:
    """Wait until at most `floor` events wait for the view; False after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:
            row = conn.execute(BACKLOG).fetchone()
            if row is not None and int(row[1]) <= floor:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(SAMPLE_SECONDS)


@dataclass
class Capacity:
    """What the load generator offered, what the system answered and what it left behind."""

    offered: float  # clicks per second asked for
    sent_rate: float  # clicks per second handed over
    on_time: float  # share of clicks handed over within ON_TIME_MS of due
    achieved: float  # 202s per second inside the window
    outstanding: int  # clicks without any answer when the window ended
    late: int  # 202s that came after the window
    failed: int  # errors (non-202, timeouts) and clicks abandoned unanswered
    backlog_peak: int  # events committed but not yet in the view, most seen
    backlog_end: int  # the same at the window's end
    drained_after: float | None  # seconds after the window until it drained; None: never
    grace: float
    reasons: list[str] = field(default_factory=list)  # why not sustained; empty if it was

    @property
    def sustained(self) -> bool:
        return not self.reasons


def _at(samples: list[tuple[float, int, int]], moment: float) -> int:
    """Events behind in the last sample taken at or before `moment`."""
    before = [behind for at, _, behind in samples if at <= moment]
    return before[-1] if before else 0


def judge(clicks: ClickStats, rate: float, sampler: BacklogSampler, grace: float) -> Capacity:
    """Wait (at most `grace` past the window) for the backlog to drain; then judge."""
    end, seconds = clicks.window_end, max(clicks.window_seconds, 1e-9)
    floor = max(FLOOR_EVENTS, FLOOR_SECONDS * rate)
    drained = sampler.wait_drained(max(end, clicks.last_answer), end + grace, floor)
    if drained is not None:
        drained += max(0.0, clicks.last_answer - end)
    on_time = sum(lag <= ON_TIME_MS for lag in clicks.send_lag_ms) / max(1, clicks.sent)
    answered = sum(at <= end for at in clicks.accepted_at)
    samples = sampler.samples
    capacity = Capacity(
        offered=rate,
        sent_rate=clicks.sent / (clicks.send_seconds + 1 / rate),  # n sends span n - 1 gaps
        on_time=on_time,
        achieved=answered / seconds,
        outstanding=clicks.sent - sum(at <= end for at in clicks.finished_at),
        late=clicks.accepted - answered,
        failed=sum(clicks.errors.values()) + clicks.abandoned,
        backlog_peak=max((behind for _, _, behind in samples), default=0),
        backlog_end=_at(samples, end),
        drained_after=drained,
        grace=grace,
    )
    if on_time < ON_TIME_SHARE:
        capacity.reasons.append(
            f"load generator fell behind: {on_time:.0%} of clicks sent within "
            f"{ON_TIME_MS:g} ms of due"
        )
    if capacity.achieved < ANSWERED_SHARE * rate:
        capacity.reasons.append(f"{capacity.achieved:.0f} of {rate:g} clicks/s answered")
    if drained is None:
        behind = samples[-1][2] if samples else 0
        capacity.reasons.append(f"backlog {behind:,} events not drained {grace:g} s after")
    return capacity


def format_capacity(c: Capacity) -> str:
    """One line: sends, answers, what was left at the window's end, the backlog."""
    drained = f"NOT drained within {c.grace:g} s"
    if c.drained_after is not None:
        drained = f"drained {c.drained_after:.1f} s after"
    verdict = "sustained" if c.sustained else "NOT sustained: " + "; ".join(c.reasons)
    return (
        f"offered {c.offered:g}/s, sent {c.sent_rate:.0f}/s ({c.on_time:.1%} on time), "
        f"answered {c.achieved:.0f}/s in the window; at its end {c.outstanding} unanswered, "
        f"then {c.late} answered late, {c.failed} failed; backlog peak {c.backlog_peak:,}, "
        f"{c.backlog_end:,} at the end, {drained} -> {verdict}"
    )
