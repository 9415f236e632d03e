"""How a long-running `syncctl` process learns it must stop: SIGTERM or SIGINT (Ctrl-C)."""

from __future__ import annotations

import signal
import threading
from types import FrameType


def stop_on_signals() -> threading.Event:
    """An event that the first SIGTERM or SIGINT sets; the process's loop checks it and
    winds down on its own terms (finishing a batch, a grace period for running tasks)."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop
