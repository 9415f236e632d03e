"""Waits between attempts to reach an IMAP server: exponential, capped, jittered, and started
over only once a connection has lived a while.

A server that accepts a connection and drops it at once must not be hammered: a connection
counts as a success only after `reset_after` seconds, so a server that keeps dropping new
connections sees the waits grow until the attempts run out.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Backoff:
    first: float = 0.5
    cap: float = 60.0
    reset_after: float = 60.0
    rand: Callable[[], float] = random.random
    clock: Callable[[], float] = time.monotonic
    failures: int = 0  # attempts that failed since the last reset
    _opened_at: float | None = field(default=None, repr=False)

    def next_delay(self) -> float:
        """Count a failure; the wait before the next attempt: half the exponential step plus
        up to as much again at random (so workers that failed together do not retry
        together), never above `cap`."""
        step = min(self.cap, self.first * 2.0**self.failures)
        self.failures += 1
        return step / 2 + self.rand() * step / 2

    def opened(self) -> None:
        """A connection is up (logged in)."""
        self._opened_at = self.clock()

    def closed(self) -> None:
        """The connection is gone; if it lived `reset_after` seconds, start the waits over."""
        if self._opened_at is not None and self.clock() - self._opened_at >= self.reset_after:
            self.failures = 0
        self._opened_at = None
