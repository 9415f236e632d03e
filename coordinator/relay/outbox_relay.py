"""One leader publishes outbox rows in order and deletes them only after the broker acked."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from coordinator.adapters.kafka.publisher import (
    KafkaPublisher,
    Message,
    PublishFailed,
    ensure_topic,
)
from coordinator.adapters.postgres.outbox_store import OutboxRow, OutboxStore, RelayLeadership
from coordinator.service.ports import StoreUnavailable

log = logging.getLogger("coordinator.relay")
CRASH_EXIT_CODE = 17


@dataclass(frozen=True)
class RelayConfig:
    """How the relay batches, waits and backs off."""

    bootstrap: str
    topic: str
    partitions: int
    batch_size: int = 500
    poll_seconds: float = 1.0
    max_backoff_seconds: float = 10.0
    standby_seconds: float = 2.0
    exit_after_publish: bool = False


def to_message(row: OutboxRow) -> Message:
    """Key = user id, so one user's events share a partition and keep their order."""
    return Message(
        key=row.user_id,
        value=row.payload,
        headers={"event_id": row.event_id, "event_type": str(row.payload["event_type"])},
    )


class OutboxRelay:
    """Leader election, then publish-ack-delete until stopped."""

    def __init__(
        self,
        config: RelayConfig,
        outbox: OutboxStore,
        leadership: RelayLeadership,
        stop: threading.Event,
        connect: Callable[[RelayConfig], KafkaPublisher] | None = None,
    ) -> None:
        self._config = config
        self._outbox = outbox
        self._leadership = leadership
        self._stop = stop
        self._connect = connect or _connect
        self._publisher: KafkaPublisher | None = None
        self._backoff = 0.0
        self.published = 0

    def run(self) -> None:
        """Stand by until leader, then relay; fall back to standby if leadership is lost."""
        while not self._stop.is_set():
            try:
                if not self._leadership.try_acquire():
                    self._stop.wait(self._config.standby_seconds)
                    continue
                log.info("relay is leader; publishing to %s", self._config.topic)
                self._lead()
            except StoreUnavailable as error:
                log.warning("database unavailable (%s); retrying", error)
                self._stop.wait(self._next_backoff())
            except Exception:
                # The relay must outlive a lost leader connection or a driver hiccup:
                # log the whole traceback, back off, and try again as a standby.
                log.exception("relay step failed; retrying")
                self._stop.wait(self._next_backoff())
            finally:
                self._leadership.release()
        self._close_publisher()

    def _lead(self) -> None:
        while not self._stop.is_set():
            self._leadership.confirm()
            rows = self._outbox.next_batch(self._config.batch_size)
            if not rows:
                self._wait_for_news()
                continue
            if not self._publish(rows):
                self._stop.wait(self._next_backoff())
                continue
            if self._config.exit_after_publish:
                log.error("exit_after_publish: exiting before deleting %d rows", len(rows))
                os._exit(CRASH_EXIT_CODE)
            self._outbox.delete([r.id for r in rows])
            self.published += len(rows)
            self._backoff = 0.0
            log.info("published %d events (total %d)", len(rows), self.published)

    def _wait_for_news(self) -> None:
        """Sleep until NOTIFY or the polling interval, in short slices so stop is prompt."""
        deadline = time.monotonic() + self._config.poll_seconds
        while not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._leadership.wait_for_news(min(remaining, 0.5)):
                return

    def _publish(self, rows: list[OutboxRow]) -> bool:
        try:
            if self._publisher is None:
                ensure_topic(self._config.bootstrap, self._config.topic, self._config.partitions)
                self._publisher = self._connect(self._config)
            self._publisher.publish([to_message(r) for r in rows])
            return True
        except PublishFailed as error:
            log.warning("broker unavailable, %d events wait in the outbox: %s", len(rows), error)
            self._close_publisher()
            return False

    def _close_publisher(self) -> None:
        if self._publisher is not None:
            self._publisher.close()
            self._publisher = None

    def _next_backoff(self) -> float:
        self._backoff = min(self._config.max_backoff_seconds, max(0.2, self._backoff * 2))
        return self._backoff


def _connect(config: RelayConfig) -> KafkaPublisher:
    return KafkaPublisher(config.bootstrap, config.topic)
