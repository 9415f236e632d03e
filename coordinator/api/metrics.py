"""Prometheus metrics: command outcomes and latency here, backlog and views read at scrape time."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import mark_process_dead
from prometheus_client.registry import Collector

from coordinator.adapters.postgres.outbox_store import OutboxStore
from coordinator.service.ports import ClientGone, ConflictRetriesExhausted, EventTooLarge, QueueFull
from core.domain.user_sync import TaskFenced
from core.store_errors import StoreUnavailable
from projections.read_models import ReadModels

log = logging.getLogger("coordinator.metrics")
METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's multiprocess mode


def metrics_folder() -> str | None:
    """The folder that several API workers share their metrics through, if any."""
    return os.environ.get(METRICS_DIR) or None


def forget_dead_workers(folder: str) -> None:
    """Drop the live gauges of workers that died without a clean shutdown: uvicorn starts
    another in their place, and their last values would stay in the sum for ever."""
    for path in Path(folder).glob("gauge_live*_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            mark_process_dead(pid, folder)  # type: ignore[no-untyped-call]
        except PermissionError:
            pass  # alive, someone else's


class CommandMetrics:
    """Counters and a latency histogram for commands, in a registry of this app's own."""

    def __init__(self, registry: CollectorRegistry, shared: bool = False) -> None:
        self.shared = shared  # one of several worker processes writing to a shared folder
        self.outcomes = Counter(
            "sync_commands_total",
            "Commands by command and outcome",
            ["command", "outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "sync_command_seconds",
            "Command handling time, lock wait included",
            ["command"],
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=registry,
        )
        self.conflicts = Counter(
            "sync_command_conflict_retries_total",
            "Version conflicts that were retried",
            registry=registry,
        )
        self.batch_sizes = Histogram(
            "sync_command_batch_size",
            "Commands of one user taken into one transaction",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=registry,
        )
        self.queue_depth = Gauge(
            "sync_command_queue_depth",
            "Commands waiting for their user's turn (summed over live worker processes)",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.turned_away = Counter(
            "sync_requests_turned_away_total",
            "Requests answered 429 because their user's line in the process was full",
            registry=registry,
        )
        self.held = Gauge(
            "sync_requests_held",
            "Requests waiting for their user's turn (SYNC_USER_ACTIVE_REQUESTS), live processes",
            multiprocess_mode="livesum",
            registry=registry,
        )

    async def watch_queues(
        self, commands: Callable[[], float], requests: Callable[[], float], every: float = 1.0
    ) -> None:
        """Show the commands and requests waiting: read at scrape time in a single process;
        as one of several workers, written every `every` seconds for the others' scrapes.
        Until cancelled."""
        if not self.shared:
            self.queue_depth.set_function(commands)
            self.held.set_function(requests)
            return
        while True:
            self.queue_depth.set(commands())
            self.held.set(requests())
            await asyncio.sleep(every)

    @contextmanager
    def timed(self, command: str) -> Iterator[Callable[[str], None]]:
        """Time a command; the body names its outcome, failures are named here."""
        outcome = ["error"]
        began = time.perf_counter()
        try:
            yield lambda name: outcome.__setitem__(0, name)
        except TaskFenced:
            outcome[0] = "rejected"
            raise
        except QueueFull:
            outcome[0] = "queue_full"
            raise
        except EventTooLarge:
            outcome[0] = "too_large"
            raise
        except ClientGone:
            outcome[0] = "abandoned"
            raise
        except ConflictRetriesExhausted:
            outcome[0] = "conflict"
            raise
        except StoreUnavailable:
            outcome[0] = "unavailable"
            raise
        finally:
            self.latency.labels(command).observe(time.perf_counter() - began)
            self.outcomes.labels(command, outcome[0]).inc()


class StoredStateCollector(Collector):
    """Gauges read from PostgreSQL when scraped: outbox backlog, dead letters, lag, tasks."""

    def __init__(self, outbox: OutboxStore, views: ReadModels) -> None:
        self._outbox = outbox
        self._views = views

    def collect(self) -> Iterator[Metric]:
        try:
            rows, oldest = self._outbox.backlog()
            dead = self._outbox.dead_letters.count()
            counts = self._views.task_counts()
            lags = self._views.projection_lag()
        except StoreUnavailable as error:
            log.warning("metrics: database unavailable (%s)", error)
            return
        yield GaugeMetricFamily("sync_outbox_backlog", "Events not yet published", value=rows)
        yield GaugeMetricFamily(
            "sync_outbox_oldest_seconds", "Age of the oldest unpublished event", value=oldest
        )
        yield GaugeMetricFamily(
            "sync_dead_letters", "Events the broker refused for good, set aside", value=dead
        )
        lag = GaugeMetricFamily(
            "sync_projection_lag", "Records behind, per partition", labels=["group", "partition"]
        )
        for group, _topic, partition, behind in lags:
            lag.add_metric([group, str(partition)], behind)
        yield lag
        tasks = GaugeMetricFamily("sync_tasks", "Tasks by status (task history)", labels=["status"])
        for status in ("running", "completed", "failed", "expired"):
            tasks.add_metric([status], counts.get(status, 0))
        yield tasks
