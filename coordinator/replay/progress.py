"""Progress and rate on stderr: redrawn in place on a terminal, a line now and then otherwise."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

BAR_WIDTH = 24


class Progress:
    """Counts done work; draws at most every `interval` seconds."""

    def __init__(
        self,
        total: int,
        out: TextIO,
        *,
        unit: str = "events",
        rate_unit: str = "ev/s",
        tty: bool | None = None,
        every_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.done = 0
        self._out = out
        self._unit = unit
        self._rate_unit = rate_unit
        self._tty = out.isatty() if tty is None else tty
        # A terminal gets a live bar; a log file gets a line every few seconds, not a flood.
        self._interval = 0.2 if self._tty else every_seconds
        self._clock = clock
        self._started = self._drawn = clock()

    def advance(self, count: int) -> None:
        """Add finished work; redraw if the interval passed."""
        self.done += count
        now = self._clock()
        if now - self._drawn >= self._interval:
            self._drawn = now
            self._draw(now, final=False)

    def finish(self) -> float:
        """Draw the final state; returns the seconds since the start."""
        now = self._clock()
        self._draw(now, final=True)
        return now - self._started

    def line(self, now: float) -> str:
        """The bar, the count and the rate."""
        elapsed = max(now - self._started, 1e-9)
        share = min(self.done / self.total, 1.0) if self.total else 1.0
        filled = round(share * BAR_WIDTH)
        bar = "#" * filled + " " * (BAR_WIDTH - filled)
        return (
            f"  [{bar}] {share:4.0%}  {self.done:,}/{self.total:,} {self._unit}  "
            f"{self.done / elapsed:,.0f} {self._rate_unit}"
        )

    def _draw(self, now: float, *, final: bool) -> None:
        if self._tty:
            self._out.write("\r" + self.line(now) + ("\n" if final else ""))
        else:
            self._out.write(self.line(now) + "\n")
        self._out.flush()
