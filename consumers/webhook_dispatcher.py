"""Example downstream subscriber: POSTs a task's ending (completed, failed, cancelled), signed.

Requests follow the Standard Webhooks specification (`consumers/webhook_signing.py`); the
deprecated `X-Sync-Signature` is still sent until 2027-06-01 and `verify()` still checks it.
Events a receiver rejects for good are kept in webhook_rejections with its answer, for
`syncctl webhooks rejected list|resend`. See docs/events.md, "Webhooks".
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from consumers.webhook_sender import (
    FIRST_BACKOFF_SECONDS,
    Receiver,
    Stopping,
    WebhookSender,
)
from consumers.webhook_signing import sign, verify
from consumers.webhook_store import DeliveryStoreUnavailable, WebhookStore
from core.domain.events import Envelope
from core.kafka.event_source import Delivery, EventSource
from core.telemetry import tracing
from core.telemetry.logs import log_context

__all__ = ["TERMINAL", "WebhookDispatcher", "sign", "verify"]
log = logging.getLogger("consumers.webhook_dispatcher")
T = TypeVar("T")

TERMINAL = frozenset({"SyncCompleted", "SyncFailed", "SyncCancelled"})
COMMIT_EVERY_SECONDS = 1.0


class WebhookDispatcher:
    """Consume, send what was not settled yet, record the answer, then commit offsets."""

    def __init__(
        self,
        source: EventSource,
        store: WebhookStore,
        sender: WebhookSender,
        receiver: Receiver,
        stop: threading.Event,
    ) -> None:
        self._source = source
        self._store = store
        self._sender = sender
        self._receiver = receiver
        self._stop = stop
        self._pending: dict[int, Delivery] = {}
        self._committed_at = time.monotonic()

    def run(self) -> None:
        """Until stop: poll, settle each event in partition order, commit what is settled."""
        try:
            while not self._stop.is_set():
                batch = self._source.poll(timeout_ms=500)
                for delivery in batch:
                    self._settle(delivery)
                    self._pending[delivery.partition] = delivery
                if not batch or time.monotonic() - self._committed_at >= COMMIT_EVERY_SECONDS:
                    self._commit()
        except Stopping:
            log.info("stopping; the unsettled event will be sent again after a restart")
        self._commit()

    def _settle(self, delivery: Delivery) -> None:
        envelope = delivery.envelope
        if envelope.event_type not in TERMINAL:
            return
        task_id = getattr(envelope.data, "task_id", None)
        attributes = {"sync.event_type": envelope.event_type, "sync.user_id": envelope.user_id}
        with (
            log_context(
                correlation_id=envelope.correlation_id, user_id=envelope.user_id, task_id=task_id
            ),
            tracing.span_under(
                "webhook send", delivery.traceparent, attributes, tracing.SpanKind.CONSUMER
            ),
        ):
            self._deliver(envelope)

    def _deliver(self, envelope: Envelope) -> None:
        url, event_id, kind = self._receiver.url, envelope.event_id, envelope.event_type
        if self._with_store(lambda: self._store.delivered(url, event_id)):
            log.info("%s %s was acknowledged before; not sent again", kind, event_id)
            return
        if self._with_store(lambda: self._store.rejected(url, event_id)):
            log.info("%s %s was rejected before; waits for a resend", kind, event_id)
            return
        body = envelope.to_json()
        sent = self._sender.send(body)
        if sent.acknowledged:
            self._with_store(lambda: self._store.record(url, event_id, sent.attempts))
            log.info("delivered %s %s in %d attempts", kind, event_id, sent.attempts)
            return
        self._with_store(
            lambda: self._store.reject(url, body, sent.status_code, sent.response, sent.attempts)
        )
        log.error(
            "WEBHOOK REJECTED for good: %s answered %s %r to %s %s; kept in webhook_rejections "
            "(`syncctl webhooks rejected resend --event-id %s` sends it again)",
            url,
            sent.status_code,
            sent.response[:200],
            kind,
            event_id,
            event_id,
        )

    def _with_store(self, call: Callable[[], T]) -> T:
        """call(), retried while the database is down; tried once even when stopping."""
        backoff = FIRST_BACKOFF_SECONDS
        while True:
            try:
                return call()
            except DeliveryStoreUnavailable as error:
                if self._stop.is_set():
                    raise Stopping from error
                log.warning("webhook tables unavailable (%s); retrying", error)
                self._stop.wait(min(backoff, self._receiver.max_backoff_seconds))
                backoff *= 2

    def _commit(self) -> None:
        if not self._pending:
            return
        try:
            self._source.commit(list(self._pending.values()))
        except Exception as error:
            # After a rebalance the commit is refused; the partition's new owner reads
            # these records again and skips the ones already settled.
            log.warning("offset commit failed (%r); records will be read again", error)
        self._pending.clear()
        self._committed_at = time.monotonic()
