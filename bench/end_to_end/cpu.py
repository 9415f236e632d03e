"""Where the CPU went during a phase: each process of the system, PostgreSQL, and the rest.

On a 2-core machine shared with other work, a latency figure means little without knowing
who had the cores: this reads user+system CPU time per process (psutil) before and after.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil

Times = dict[str, float]


def _cpu(process: psutil.Process) -> float:
    try:
        t = process.cpu_times()
    except psutil.Error:
        return 0.0
    return float(t.user + t.system)


class CpuMeter:
    """CPU seconds per named process; `postgres` is the postmaster and all its children."""

    def __init__(self, pids: dict[str, int], pgdata: Path | None) -> None:
        self._processes = {n: psutil.Process(p) for n, p in pids.items() if psutil.pid_exists(p)}
        self._postmaster: psutil.Process | None = None
        pidfile = pgdata / "postmaster.pid" if pgdata else None
        if pidfile and pidfile.exists():
            self._postmaster = psutil.Process(int(pidfile.read_text().split()[0]))

    def add(self, name: str, pid: int) -> None:
        self._processes[name] = psutil.Process(pid)

    def snapshot(self) -> tuple[float, Times]:
        """(monotonic time, CPU seconds by name, with `machine` = all CPUs' busy time)."""
        times = {name: _cpu(p) for name, p in self._processes.items()}
        if self._postmaster is not None:
            family = [self._postmaster, *self._postmaster.children(recursive=True)]
            times["postgres"] = sum(_cpu(p) for p in family)
        machine = psutil.cpu_times()
        times["machine"] = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)
        return time.monotonic(), times


def usage(before: tuple[float, Times], after: tuple[float, Times]) -> Times:
    """Percent of one core per name over the interval; `other` = the machine less ours."""
    seconds = max(after[0] - before[0], 1e-9)
    shares = {n: 100 * (after[1][n] - before[1].get(n, 0.0)) / seconds for n in after[1]}
    ours = sum(v for n, v in shares.items() if n != "machine")
    shares["other"] = max(0.0, shares["machine"] - ours)
    return shares


def format_usage(shares: Times) -> str:
    """`api 85%, postgres 40%, ...` largest first, then the machine's total of N cores."""
    named = sorted(((n, v) for n, v in shares.items() if n != "machine"), key=lambda item: -item[1])
    parts = ", ".join(f"{n} {v:.0f}%" for n, v in named)
    cores = os.cpu_count() or 1
    return f"{parts}; machine {shares['machine']:.0f}% of {cores * 100}%"
