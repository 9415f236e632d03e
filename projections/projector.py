"""The projector: Kafka batches into the status view and task history, exactly once in effect."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType

from consumers.event_source import Delivery, EventSource, SourceConfig
from coordinator.domain.events import Envelope, SyncStarted
from coordinator.settings import Settings
from projections.status_view import StatusRow, apply_status
from projections.store import ProjectionBatch, ProjectionStore, StoreUnavailable
from projections.task_history import TaskRow, apply_task

log = logging.getLogger("projections.projector")


@dataclass(frozen=True)
class LagReport:
    """Unconsumed records per partition, written along with a batch."""

    group_id: str
    topic: str
    partitions: dict[int, int]


def apply_batch(
    store: ProjectionStore, deliveries: Sequence[Delivery], lag: LagReport | None = None
) -> int:
    """Apply a batch in one transaction; returns how many events it applied."""
    by_user: dict[str, dict[int, Envelope]] = {}
    for d in deliveries:
        by_user.setdefault(d.envelope.user_id, {})[d.envelope.version] = d.envelope
    if not by_user and lag is None:
        return 0
    with store.transaction() as tx:
        statuses = tx.lock_status(by_user) if by_user else {}
        pending = {
            user: _unapplied(tx, statuses.get(user), received) for user, received in by_user.items()
        }
        events = [e for user_events in pending.values() for e in user_events]
        # A task started in this batch has no row yet: only older tasks are read.
        started = {e.data.task_id for e in events if isinstance(e.data, SyncStarted)}
        tasks = tx.load_tasks({e.data.task_id for e in events} - started)
        tx.save(*_fold(statuses, tasks, pending))
        if lag is not None:
            tx.record_lag(lag.group_id, lag.topic, lag.partitions)
    return len(events)


def _fold(
    statuses: dict[str, StatusRow],
    tasks: dict[str, TaskRow],
    pending: dict[str, list[Envelope]],
) -> tuple[list[StatusRow], list[TaskRow]]:
    """The status and task rows the pending events change, each in its final state."""
    changed_statuses: list[StatusRow] = []
    changed_tasks: dict[str, TaskRow] = {}
    for user, events in pending.items():
        status = statuses.get(user)
        for envelope in events:
            status = apply_status(status, envelope)
            task = apply_task(tasks.get(envelope.data.task_id), envelope)
            if task is not None:
                tasks[task.task_id] = changed_tasks[task.task_id] = task
        if events and status is not None:
            changed_statuses.append(status)
    return changed_statuses, list(changed_tasks.values())


def _unapplied(
    tx: ProjectionBatch, status: StatusRow | None, received: dict[int, Envelope]
) -> list[Envelope]:
    """Events after the checkpoint, gaps filled from the event store, up to the first hole."""
    checkpoint = status.last_version if status else 0
    # Versions at or below the checkpoint were applied before: a redelivery.
    fresh = {v: e for v, e in received.items() if v > checkpoint}
    if not fresh:
        return []
    newest, any_event = max(fresh), next(iter(fresh.values()))
    if len(fresh) < newest - checkpoint:
        for stored in tx.missing_events(any_event.stream_id, checkpoint, newest):
            fresh.setdefault(stored.version, stored)
    events: list[Envelope] = []
    for version in range(checkpoint + 1, newest + 1):
        if version not in fresh:
            # Applying past a hole would move the checkpoint over it for good.
            log.error("%s has no version %d in the event store", any_event.user_id, version)
            break
        events.append(fresh[version])
    return events


@dataclass(frozen=True)
class ProjectorConfig:
    """Where the projector reads and writes, and how it paces itself."""

    source: SourceConfig
    database_url: str
    poll_timeout_ms: int = 500
    report_seconds: float = 2.0
    max_backoff_seconds: float = 10.0


class Projector:
    """Poll, apply in one transaction, then commit offsets; until stop is set."""

    def __init__(self, config: ProjectorConfig, stop: threading.Event) -> None:
        self._config = config
        self._stop = stop
        self.consumed = 0
        self.applied = 0
        self.partitions: list[int] = []

    def run(self) -> None:
        """Run until stopped, reconnecting to the broker and retrying the database."""
        store = ProjectionStore(self._config.database_url)
        try:
            while not self._stop.is_set():
                source = self._connect()
                if source is None:
                    return
                try:
                    self._consume(source, store)
                except Exception:
                    # Neither the broker client's many failures nor a surprise in one batch
                    # may end the projector: uncommitted batches come back after a reconnect,
                    # and an error that persists is logged on every attempt.
                    log.exception("projector step failed; reconnecting")
                    self._stop.wait(1.0)
                finally:
                    source.close()
        finally:
            store.close()

    def _connect(self) -> EventSource | None:
        backoff = 0.2
        while not self._stop.is_set():
            try:
                return EventSource(self._config.source)
            except Exception as error:
                log.warning("broker unavailable (%r); retrying in %.1fs", error, backoff)
                self._stop.wait(backoff)
                backoff = min(self._config.max_backoff_seconds, backoff * 2)
        return None

    def _consume(self, source: EventSource, store: ProjectionStore) -> None:
        reported_at, reported_total = time.monotonic(), self.applied
        lag: LagReport | None = None
        while not self._stop.is_set():
            batch = source.poll(self._config.poll_timeout_ms)
            if batch or lag is not None:
                if not self._store(store, batch, lag):
                    return
                lag = None
                self.consumed += len(batch)
                if batch:
                    self._commit(source, batch)
            elapsed = time.monotonic() - reported_at
            if elapsed >= self._config.report_seconds:
                lag = self._report(source, elapsed, self.applied - reported_total)
                reported_at, reported_total = time.monotonic(), self.applied

    def _store(self, store: ProjectionStore, batch: list[Delivery], lag: LagReport | None) -> bool:
        """Apply the batch, retrying while the database is down; False if stopped first."""
        backoff = 0.2
        while not self._stop.is_set():
            try:
                self.applied += apply_batch(store, batch, lag)
                return True
            except StoreUnavailable as error:
                log.warning("database unavailable (%s); retrying batch in %.1fs", error, backoff)
                self._stop.wait(backoff)
                backoff = min(self._config.max_backoff_seconds, backoff * 2)
        return False

    def _commit(self, source: EventSource, batch: list[Delivery]) -> None:
        try:
            source.commit(batch)
        except Exception as error:
            # After a rebalance the commit is refused; the views already hold the batch
            # and the checkpoint makes its redelivery harmless.
            log.warning("offset commit failed (%r); the batch may be redelivered", error)

    def _report(self, source: EventSource, elapsed: float, applied: int) -> LagReport | None:
        try:
            lag = source.lag()
        except Exception as error:
            log.warning("cannot read lag: %r", error)
            lag = {}
        partitions = sorted(lag)
        if partitions != self.partitions:
            log.info("assigned partitions %s", partitions)
            self.partitions = partitions
        if applied:
            log.info(
                "applied %d events (%.0f/s), %d in total; lag %d",
                applied,
                applied / elapsed,
                self.applied,
                sum(lag.values()),
            )
        cfg = self._config.source
        return LagReport(cfg.group, cfg.topic, lag) if lag else None


def run_projector(settings: Settings) -> int:
    """`syncctl project`: run until SIGTERM or SIGINT."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    source = SourceConfig(
        bootstrap=settings.require_kafka_bootstrap(),
        topic=settings.kafka_topic,
        group=settings.projector_group,
        max_poll_interval_ms=settings.consumer_max_poll_interval_ms,
        max_records=2000,
    )
    config = ProjectorConfig(source=source, database_url=settings.require_database_url())
    Projector(config, stop).run()
    log.info("projector stopped")
    return 0
