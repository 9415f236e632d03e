"""Executors do the actual sync; a small interface so real importers can plug in."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


class Stopped(Exception):
    """The worker is shutting down past its grace period."""


class TaskFailed(Exception):
    """The sync cannot finish; the message is the reason recorded in SyncFailed, as it is."""


@dataclass(frozen=True)
class TaskSpec:
    """What an executor is asked to do."""

    user_id: str
    task_id: str
    sync_type: str


# percent, stats -> None; raises Fenced when the task is no longer the live one.
Report = Callable[[float, dict[str, Any]], None]


class Executor(Protocol):
    """Runs one sync; reports progress through `report`; returns the final stats."""

    def run(self, task: TaskSpec, report: Report, stopping: threading.Event) -> dict[str, Any]: ...


class DemoExecutor:
    """Imports a simulated mailbox of `messages` at `pace` messages per second."""

    def __init__(self, messages: int = 200, pace: float = 50.0, report_every: float = 0.5):
        self._messages = messages
        self._pace = pace
        self._report_every = report_every

    def run(self, task: TaskSpec, report: Report, stopping: threading.Event) -> dict[str, Any]:
        total = self._messages if task.sync_type == "full" else max(1, self._messages // 2)
        last_report = time.monotonic()
        for imported in range(1, total + 1):
            if stopping.wait(1 / self._pace):
                raise Stopped(f"stopped after {imported - 1} of {total} messages")
            if time.monotonic() - last_report >= self._report_every:
                report(100.0 * imported / total, {"imported": imported, "total": total})
                last_report = time.monotonic()
        return {"imported": total, "total": total}
