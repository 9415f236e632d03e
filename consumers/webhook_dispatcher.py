"""Example downstream subscriber: POSTs a task's ending (completed, failed, cancelled), signed.

Receivers check `X-Sync-Signature` with `verify()`; see docs/events.md, "Webhooks".
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import TypeVar

import httpx

from consumers.event_source import Delivery, EventSource, SourceConfig
from consumers.webhook_store import DeliveryStoreUnavailable, WebhookStore
from coordinator.domain.events import Envelope
from coordinator.settings import Settings

log = logging.getLogger("consumers.webhook_dispatcher")
T = TypeVar("T")

TERMINAL = frozenset({"SyncCompleted", "SyncFailed", "SyncCancelled"})
# A 4xx says the request itself is wrong, so sending it again cannot help; except
# 408 (receiver timed out) and 429 (receiver asks us to slow down), which are transient.
RETRYABLE_4XX = frozenset({408, 429})
FIRST_BACKOFF_SECONDS = 0.5
COMMIT_EVERY_SECONDS = 1.0


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>`: HMAC-SHA256 with the shared secret over `{timestamp}.{body}`."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    now: float | None = None,
    tolerance_seconds: float = 300,
) -> bool:
    """For receivers: the signature matches the exact body and the timestamp is recent."""
    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except ValueError:
        return False
    # The timestamp is signed too, so a captured request cannot be replayed later.
    return age <= tolerance_seconds and hmac.compare_digest(
        sign(secret, timestamp, body), signature
    )


class Stopping(Exception):
    """Stop was requested before the current event was settled."""


@dataclass(frozen=True)
class Receiver:
    """Where webhooks go and how they are signed."""

    url: str
    secret: str
    max_backoff_seconds: float
    timeout_seconds: float = 10.0


class WebhookSender:
    """POSTs one envelope until a 2xx or a permanent rejection; raises Stopping on stop."""

    def __init__(self, receiver: Receiver, stop: threading.Event, client: httpx.Client) -> None:
        self._receiver = receiver
        self._stop = stop
        self._client = client

    def send(self, envelope: Envelope) -> tuple[bool, int]:
        """(acknowledged, attempts); False means rejected for good."""
        body = json.dumps(envelope.to_json(), separators=(",", ":")).encode()
        what = f"{envelope.event_type} {envelope.event_id} (user {envelope.user_id})"
        backoff = FIRST_BACKOFF_SECONDS
        attempts = 0
        while not self._stop.is_set():
            attempts += 1
            status, detail = self._post(envelope, body)
            if status is not None and 200 <= status < 300:
                return True, attempts
            if status is not None and 400 <= status < 500 and status not in RETRYABLE_4XX:
                log.error(
                    "WEBHOOK REJECTED for good: %s answered %s to %s; not retried, not recorded "
                    "as delivered (a new consumer group offers it again)",
                    self._receiver.url,
                    detail,
                    what,
                )
                return False, attempts
            delay = min(backoff, self._receiver.max_backoff_seconds)
            log.warning(
                "attempt %d of %s failed: %s; retry in %.1fs", attempts, what, detail, delay
            )
            self._stop.wait(delay)
            backoff *= 2
        raise Stopping

    def _post(self, envelope: Envelope, body: bytes) -> tuple[int | None, str]:
        # A fresh timestamp per attempt, so a late retry still passes the receiver's window.
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Sync-Event-Id": envelope.event_id,
            "X-Sync-Event-Type": envelope.event_type,
            "X-Sync-Timestamp": timestamp,
            "X-Sync-Signature": sign(self._receiver.secret, timestamp, body),
        }
        try:
            response = self._client.post(self._receiver.url, content=body, headers=headers)
        except httpx.HTTPError as error:
            return None, repr(error)
        return response.status_code, f"HTTP {response.status_code} {response.text[:200]!r}"


class WebhookDispatcher:
    """Consume, send what was not acknowledged yet, record the 2xx, then commit offsets."""

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
                    self._settle(delivery.envelope)
                    self._pending[delivery.partition] = delivery
                if not batch or time.monotonic() - self._committed_at >= COMMIT_EVERY_SECONDS:
                    self._commit()
        except Stopping:
            log.info("stopping; the unsettled event will be sent again after a restart")
        self._commit()

    def _settle(self, envelope: Envelope) -> None:
        if envelope.event_type not in TERMINAL:
            return
        url, event_id = self._receiver.url, envelope.event_id
        if self._with_store(lambda: self._store.delivered(url, event_id)):
            log.info("%s %s was acknowledged before; not sent again", envelope.event_type, event_id)
            return
        acknowledged, attempts = self._sender.send(envelope)
        if acknowledged:
            self._with_store(lambda: self._store.record(url, event_id, attempts))
            log.info("delivered %s %s in %d attempts", envelope.event_type, event_id, attempts)

    def _with_store(self, call: Callable[[], T]) -> T:
        """call(), retried while the database is down; tried once even when stopping."""
        backoff = FIRST_BACKOFF_SECONDS
        while True:
            try:
                return call()
            except DeliveryStoreUnavailable as error:
                if self._stop.is_set():
                    raise Stopping from error
                log.warning("webhook_deliveries unavailable (%s); retrying", error)
                self._stop.wait(min(backoff, self._receiver.max_backoff_seconds))
                backoff *= 2

    def _commit(self) -> None:
        if not self._pending:
            return
        try:
            self._source.commit(list(self._pending.values()))
        except Exception as error:
            # After a rebalance the commit is refused; the partition's new owner reads
            # these records again and skips the ones recorded as acknowledged.
            log.warning("offset commit failed (%r); records will be read again", error)
        self._pending.clear()
        self._committed_at = time.monotonic()


def receiver_from(settings: Settings) -> Receiver:
    """The receiver, or SystemExit naming what is missing."""
    url, secret = settings.webhook_url or "", settings.webhook_secret.get_secret_value()
    named = (("SYNC_WEBHOOK_URL", url), ("SYNC_WEBHOOK_SECRET", secret))
    missing = [name for name, value in named if not value]
    if missing:
        raise SystemExit(f"syncctl webhooks: {' and '.join(missing)} not set; refusing to start")
    return Receiver(url, secret, settings.webhook_max_backoff_seconds)


def run_dispatcher(settings: Settings) -> int:
    """`syncctl webhooks`: dispatch until SIGTERM or SIGINT."""
    receiver = receiver_from(settings)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    store = WebhookStore(settings.require_database_url())
    source = EventSource(
        SourceConfig(
            bootstrap=settings.require_kafka_bootstrap(),
            topic=settings.kafka_topic,
            group=settings.webhook_group,
            max_poll_interval_ms=settings.consumer_max_poll_interval_ms,
            # One record per poll: a receiver's retries then delay the next poll by one
            # event's backoff, not a whole batch's, which keeps the group membership.
            max_records=1,
        )
    )
    client = httpx.Client(timeout=receiver.timeout_seconds)
    log.info("dispatching %s to %s", sorted(TERMINAL), receiver.url)
    try:
        WebhookDispatcher(
            source, store, WebhookSender(receiver, stop, client), receiver, stop
        ).run()
    finally:
        client.close()
        source.close()
        store.close()
    return 0
