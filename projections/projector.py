"""The projector: Kafka batches into the status view and task history, exactly once in effect."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from core.kafka.event_source import Delivery, EventSource, SourceConfig
from core.store_errors import StoreUnavailable
from core.telemetry import tracing
from projections.batches import LagReport, apply_batch
from projections.store import ProjectionStore

log = logging.getLogger("projections.projector")
WRITER_BUSY_POLL_MS = 10


@dataclass(frozen=True)
class Applying:
    """A batch on the writer thread; its offsets are committed once it is done."""

    done: Future[bool]
    batch: list[Delivery]


@dataclass(frozen=True)
class ProjectorConfig:
    """Where the projector reads and writes, and how it paces itself."""

    source: SourceConfig
    database_url: str
    poll_timeout_ms: int = 500
    # Records polled while the writer is busy; beyond this the poll waits for it.
    max_batch: int = 20_000
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
        # The writer thread applies one batch while this thread polls and decodes what comes
        # next, and hands all of it over when the writer is free: under load batches grow,
        # so more of a user's events fold into one row write. Offsets are committed here,
        # only after the writer committed their batch.
        with ThreadPoolExecutor(1, thread_name_prefix="projector-writer") as writer:
            reported_at, reported_total = time.monotonic(), self.applied
            lag: LagReport | None = None
            applying: Applying | None = None
            waiting: list[Delivery] = []
            while not self._stop.is_set():
                # While the writer is busy, a short poll: the broker client keeps fetching
                # (it sends the next fetch from poll) and the batch is handed over as soon
                # as the writer is free.
                batch = source.poll(
                    WRITER_BUSY_POLL_MS if applying else self._config.poll_timeout_ms
                )
                waiting += batch
                full = len(waiting) >= self._config.max_batch
                if applying and (full or applying.done.done()):
                    if not self._finish(source, applying):
                        return
                    applying = None
                if not applying and (waiting or lag is not None):
                    applying = Applying(writer.submit(self._store, store, waiting, lag), waiting)
                    waiting, lag = [], None
                elapsed = time.monotonic() - reported_at
                if elapsed >= self._config.report_seconds:
                    lag = self._report(source, elapsed, self.applied - reported_total)
                    reported_at, reported_total = time.monotonic(), self.applied
            if applying:
                self._finish(source, applying)

    def _finish(self, source: EventSource, applying: Applying) -> bool:
        """Wait for the writer, then commit the batch's offsets; False if stopped first."""
        if not applying.done.result():
            return False
        self.consumed += len(applying.batch)
        if applying.batch:
            self._commit(source, applying.batch)
        return True

    def _store(self, store: ProjectionStore, batch: list[Delivery], lag: LagReport | None) -> bool:
        """Apply the batch, retrying while the database is down; False if stopped first."""
        backoff = 0.2
        while not self._stop.is_set():
            try:
                with _apply_span(batch):
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


def _apply_span(batch: list[Delivery]) -> Any:
    """Traced: the batch's transaction, child of its first event's record, linking the rest."""
    return tracing.span_in_batch(
        "projector apply",
        (d.traceparent for d in batch),
        {"sync.events": len(batch)},
        kind=tracing.SpanKind.CONSUMER,
    )
