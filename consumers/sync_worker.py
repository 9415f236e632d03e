"""The sync worker: runs an executor for each SyncStarted, reports back, stops when fenced.

A task stops early when its SyncCancelled arrives on the topic (its stop event is set, the
executor raises Stopped at its next check) or when a report is answered 409, whichever comes
first; a cancelled task is not reported failed.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from datetime import UTC, datetime

from consumers.coordinator_client import CoordinatorClient, Fenced, ReportFailed
from consumers.executors import Executor, Stopped, TaskFailed, TaskSpec
from core.domain.events import SyncCancelled, SyncStarted
from core.kafka.event_source import Delivery
from core.telemetry import tracing
from core.telemetry.logs import log_context

log = logging.getLogger("consumers.sync_worker")
CONSUMER = tracing.SpanKind.CONSUMER


class SyncWorker:
    """Takes SyncStarted events, runs at most `concurrency` executors at once."""

    def __init__(
        self, executor: Executor, client: CoordinatorClient, concurrency: int, grace: float
    ) -> None:
        self._executor = executor
        self._client = client
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="sync")
        self._grace = grace
        self._running: dict[str, Future[None]] = {}
        self._stops: dict[str, threading.Event] = {}  # per task: cancelled, or shutting down
        self._cancelled_at: dict[str, datetime] = {}
        self._finished: deque[str] = deque()
        self.completed = self.failed = self.fenced = self.cancelled = self.skipped = 0

    def take(self, deliveries: list[Delivery]) -> None:
        """Submit the live tasks among these events; duplicates and dead tasks are skipped."""
        now = datetime.now(UTC)
        for delivery in deliveries:
            event = delivery.envelope.data
            if isinstance(event, SyncCancelled):
                self._cancel(event)
                continue
            if not isinstance(event, SyncStarted) or event.task_id in self._running:
                continue
            if event.lease_expires_at <= now:
                continue  # already dead: the reaper or the next click replaces it
            task = TaskSpec(delivery.envelope.user_id, event.task_id, event.sync_type)
            self._stops[task.task_id] = threading.Event()
            future = self._running[task.task_id] = self._pool.submit(
                self._execute_traced, task, delivery
            )
            future.add_done_callback(self._on_done(task.task_id))

    def _cancel(self, event: SyncCancelled) -> None:
        """Tell the task's executor to stop, if this worker runs it."""
        stop = self._stops.get(event.task_id)
        if stop is not None and not stop.is_set():
            self._cancelled_at[event.task_id] = event.finished_at
            stop.set()

    def _execute_traced(self, task: TaskSpec, delivery: Delivery) -> None:
        """`_execute` in a span continuing the event's trace; its ids on every log line."""
        ids = {"user_id": task.user_id, "task_id": task.task_id}
        attributes = {f"sync.{k}": v for k, v in ids.items()}
        with (
            log_context(correlation_id=delivery.envelope.correlation_id, **ids),
            tracing.span_under("sync run", delivery.traceparent, attributes, CONSUMER),
        ):
            self._execute(task)

    def _execute(self, task: TaskSpec) -> None:
        def report(percent: float, stats: dict[str, object]) -> None:
            self._client.progress(task.user_id, task.task_id, percent, stats)

        log.info("task %s of %s: started", task.task_id, task.user_id)
        if not self._claim(task):
            return
        try:
            stats = self._executor.run(task, report, self._stops[task.task_id])
            self._client.complete(task.user_id, task.task_id, stats)
            self.completed += 1
            log.info("task %s: completed %s", task.task_id, stats)
        except Fenced as error:
            self.fenced += 1
            log.warning("task %s: fenced, stopping (%s)", task.task_id, error)
        except Stopped as error:
            cancelled_at = self._cancelled_at.get(task.task_id)
            if cancelled_at is None:
                self._fail(task, f"worker shut down before finishing: {error}")
            else:
                self.cancelled += 1
                late = (datetime.now(UTC) - cancelled_at).total_seconds()
                log.info(
                    "task %s: cancelled, stopped %.3f s after the cancel was recorded (%s)",
                    task.task_id,
                    late,
                    error,
                )
        except TaskFailed as error:
            log.warning("task %s: failed: %s", task.task_id, error)
            self._fail(task, str(error))
        except ReportFailed as error:
            log.error("task %s: cannot report (%s); its lease will lapse", task.task_id, error)
        except Exception as error:
            log.exception("task %s: executor failed", task.task_id)
            self._fail(task, f"{type(error).__name__}: {error}")

    def _claim(self, task: TaskSpec) -> bool:
        """Report 0% before any work: a task that already ended (a SyncStarted delivered
        again, after a restart or a rebalance) is fenced here and not run a second time."""
        try:
            self._client.progress(task.user_id, task.task_id, 0.0, {})
        except Fenced as error:
            self.skipped += 1
            log.info("task %s: not live any more, not run again (%s)", task.task_id, error)
            return False
        except ReportFailed as error:
            log.error("task %s: cannot report (%s); its lease will lapse", task.task_id, error)
            return False
        return True

    def _fail(self, task: TaskSpec, error: str) -> None:
        self.failed += 1
        try:
            self._client.fail(task.user_id, task.task_id, error)
        except (Fenced, ReportFailed) as problem:
            log.warning("task %s: failure not recorded (%s)", task.task_id, problem)

    def _on_done(self, task_id: str) -> Callable[[Future[None]], None]:
        return lambda _: self._finished.append(task_id)

    def forget_finished(self) -> None:
        """Drop finished tasks (without scanning every queued one on each poll)."""
        while self._finished:
            task_id = self._finished.popleft()
            self._running.pop(task_id, None)
            self._stops.pop(task_id, None)
            self._cancelled_at.pop(task_id, None)

    def shutdown(self) -> None:
        """Let running tasks finish within the grace period, then stop the rest."""
        pending = [f for f in self._running.values() if not f.done()]
        log.info("stopping: %d tasks running, grace %.0fs", len(pending), self._grace)
        _, late = wait_all(pending, timeout=self._grace)
        if late:
            for stop in list(self._stops.values()):
                stop.set()
            wait_all(late, timeout=30)
        self._pool.shutdown(wait=False, cancel_futures=True)
