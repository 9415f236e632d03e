"""One leader publishes outbox rows in order and deletes them only after the broker acked.

A record the broker refuses for good is set aside as a dead letter, so it cannot hold up
the records behind it; a broker that is away delays the whole batch. Traced, each record gets
a producer span under its event's traceparent, and the record carries that span's.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from coordinator.adapters.kafka.publisher import (
    DEFAULT_MAX_MESSAGE_BYTES,
    KafkaPublisher,
    Message,
    PublishFailed,
    PublishResult,
)
from coordinator.adapters.kafka.topic import ensure_topic
from coordinator.adapters.postgres.outbox_store import OutboxRow, OutboxStore, RelayLeadership
from core.store_errors import StoreUnavailable
from core.telemetry import tracing

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
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    read_topic_limit: bool = True
    replication_factor: int = 1
    min_insync_replicas: int | None = None  # unset: the broker's default
    delivery_timeout_seconds: float = 30.0


def to_message(row: OutboxRow, traceparent: str | None = None) -> Message:
    """Key = user id, so one user's events share a partition and keep their order.

    Headers: event_id, event_type and, when the event is traced, traceparent (the publish
    span's, else the stored one).
    """
    headers = {"event_id": row.event_id, "event_type": str(row.payload["event_type"])}
    traceparent = traceparent or row.payload.get("traceparent")
    if traceparent:
        headers["traceparent"] = traceparent
    return Message(key=row.user_id, value=row.payload, headers=headers)


def publish_spans(topic: str, rows: list[OutboxRow]) -> list[tracing.Span | None]:
    """One producer span per record under its event's trace; Nones when tracing is off."""
    if not tracing.enabled():
        return [None] * len(rows)
    return [
        tracing.start_span(
            f"{topic} publish",
            parent=row.payload.get("traceparent"),
            kind=tracing.SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": topic,
                "messaging.message.id": row.event_id,
                "sync.event_type": str(row.payload["event_type"]),
                "sync.user_id": row.user_id,
            },
        )
        for row in rows
    ]


def end_publish_spans(spans: list[tracing.Span | None], result: PublishResult | None) -> None:
    """Acked records end well; refused and unsent ones end as errors."""
    for index, span in enumerate(spans):
        if result is None:
            tracing.finish(span, "broker unavailable")
        elif index in result.refused:
            tracing.finish(span, f"dead letter: {result.refused[index]}")
        elif index not in result.acked:
            tracing.finish(span, f"not acknowledged: {result.failure}")
        else:
            tracing.finish(span)


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
        self.dead_lettered = 0

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
            result = self._publish(rows)
            if result is None:
                self._stop.wait(self._next_backoff())
                continue
            if self._config.exit_after_publish and result.acked:
                log.error("exit_after_publish: exiting before deleting %d rows", len(rows))
                os._exit(CRASH_EXIT_CODE)
            self._settle(rows, result)
            if result.failure is not None:
                waiting = len(rows) - len(result.acked) - len(result.refused)
                log.warning(
                    "broker unavailable, %d events wait in the outbox: %s", waiting, result.failure
                )
                self._close_publisher()
                self._stop.wait(self._next_backoff())
                continue
            self._backoff = 0.0

    def _settle(self, rows: list[OutboxRow], result: PublishResult) -> None:
        """Delete what the broker acked, set aside what it refused for good; keep the rest."""
        refused = [(rows[i], reason) for i, reason in sorted(result.refused.items())]
        self._outbox.settle(
            [rows[i].id for i in sorted(result.acked)], [(r.id, why) for r, why in refused]
        )
        for row, reason in refused:
            log.error(
                "dead letter: event %s of user %s (version %s) refused for good: %s",
                row.event_id,
                row.user_id,
                row.payload.get("version"),
                reason,
            )
        self.published += len(result.acked)
        self.dead_lettered += len(refused)
        if result.acked:
            log.info("published %d events (total %d)", len(result.acked), self.published)

    def _wait_for_news(self) -> None:
        """Sleep until NOTIFY or the polling interval, in short slices so stop is prompt."""
        deadline = time.monotonic() + self._config.poll_seconds
        while not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._leadership.wait_for_news(min(remaining, 0.5)):
                return

    def _publish(self, rows: list[OutboxRow]) -> PublishResult | None:
        """What became of each row; None if the broker could not be used at all."""
        try:
            if self._publisher is None:
                config = self._config
                ensure_topic(
                    config.bootstrap,
                    config.topic,
                    config.partitions,
                    config.replication_factor,
                    config.min_insync_replicas,
                )
                self._publisher = self._connect(self._config)
            spans = publish_spans(self._config.topic, rows)
            messages = [
                to_message(r, None if s is None else tracing.traceparent_of(s))
                for r, s in zip(rows, spans, strict=True)
            ]
            result = self._publisher.publish(messages)
            end_publish_spans(spans, result)
            return result
        except PublishFailed as error:
            log.warning("broker unavailable, %d events wait in the outbox: %s", len(rows), error)
            self._close_publisher()
            return None

    def _close_publisher(self) -> None:
        publisher, self._publisher = self._publisher, None  # never reused, even if close fails
        if publisher is not None:
            publisher.close()

    def _next_backoff(self) -> float:
        self._backoff = min(self._config.max_backoff_seconds, max(0.2, self._backoff * 2))
        return self._backoff


def _connect(config: RelayConfig) -> KafkaPublisher:
    return KafkaPublisher(
        config.bootstrap,
        config.topic,
        timeout_seconds=config.delivery_timeout_seconds,
        max_message_bytes=config.max_message_bytes,
        read_topic_limit=config.read_topic_limit,
    )
