"""Run a callback first when the process is told to stop (SIGTERM, SIGINT).

uvicorn, in one process or as each of several workers, waits for every open response to
finish before it stops, and a status stream never finishes by itself. Chaining onto the
handlers uvicorn installed lets the streams end first, so a stop is as quick as without them.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def on_stop_signal(callback: Callable[[], None]) -> Callable[[], None]:
    """Call `callback`, then the handler that was there; returns an undo. Only the main
    thread can set handlers: elsewhere (an in-process test client) nothing is chained."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous: dict[int, Any] = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}

    def handler(signum: int, frame: FrameType | None) -> None:
        callback()
        before = previous[signum]
        if callable(before):
            before(signum, frame)
        else:  # the default action (or none): put it back and let it happen
            signal.signal(signum, before)
            signal.raise_signal(signum)

    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)

    def undo() -> None:
        for sig, before in previous.items():
            if signal.getsignal(sig) is handler:
                signal.signal(sig, before)

    return undo
