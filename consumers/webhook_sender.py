"""One webhook POST, signed the Standard Webhooks way, retried until an answer that settles it."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx

from consumers.webhook_signing import BadSecret, parse_secrets, sign, standard_headers
from core.settings import Settings
from core.telemetry import tracing

log = logging.getLogger("consumers.webhook_dispatcher")
# A 4xx says the request itself is wrong, so sending it again cannot help; except
# 408 (receiver timed out) and 429 (receiver asks us to slow down), which are transient.
RETRYABLE_4XX = frozenset({408, 429})
FIRST_BACKOFF_SECONDS = 0.5
EXCERPT_CHARS = 500


class Stopping(Exception):
    """Stop was requested before the current event was settled."""


@dataclass(frozen=True)
class Receiver:
    """Where webhooks go and how they are signed."""

    url: str
    secrets: tuple[str, ...]  # the first is current; each one signs webhook-signature
    max_backoff_seconds: float
    legacy_headers: bool = True  # X-Sync-*, deprecated (docs/events.md)
    timeout_seconds: float = 10.0


@dataclass(frozen=True)
class Sent:
    """How an event's sending ended: acknowledged, or rejected for good with the answer."""

    acknowledged: bool
    attempts: int
    status_code: int | None = None
    response: str = ""  # the receiver's answer (an excerpt) or the transport error


def body_of(envelope: dict[str, Any]) -> bytes:
    """The bytes that are sent and signed: the envelope as compact JSON."""
    return json.dumps(envelope, separators=(",", ":")).encode()


class WebhookSender:
    """POSTs one envelope until a 2xx or a permanent rejection; raises Stopping on stop.

    `max_attempts` bounds the tries (the `rejected resend` command); the dispatcher retries
    transient failures until stopped.
    """

    def __init__(
        self,
        receiver: Receiver,
        stop: threading.Event,
        client: httpx.Client,
        max_attempts: int | None = None,
    ) -> None:
        self._receiver = receiver
        self._stop = stop
        self._client = client
        self._max_attempts = max_attempts

    def send(self, envelope: dict[str, Any]) -> Sent:
        """Acknowledged, or rejected for good (a 4xx other than 408/429) with the answer."""
        body = body_of(envelope)
        what = f"{envelope['event_type']} {envelope['event_id']} (user {envelope['user_id']})"
        backoff = FIRST_BACKOFF_SECONDS
        attempts = 0
        while not self._stop.is_set():
            attempts += 1
            status, answer = self._post(envelope, body)
            if status is not None and 200 <= status < 300:
                return Sent(True, attempts, status, answer)
            if status is not None and 400 <= status < 500 and status not in RETRYABLE_4XX:
                return Sent(False, attempts, status, answer)
            if self._max_attempts is not None and attempts >= self._max_attempts:
                raise Stopping(f"{what}: still failing after {attempts} attempts: {answer}")
            delay = min(backoff, self._receiver.max_backoff_seconds)
            log.warning(
                "attempt %d of %s failed: %s; retry in %.1fs", attempts, what, answer, delay
            )
            self._stop.wait(delay)
            backoff *= 2
        raise Stopping

    def _post(self, envelope: dict[str, Any], body: bytes) -> tuple[int | None, str]:
        # A fresh timestamp per attempt, so a late retry still passes the receiver's window.
        timestamp = str(int(time.time()))
        secrets = self._receiver.secrets
        headers = {
            "Content-Type": "application/json",
            **standard_headers(secrets, envelope["event_id"], timestamp, body),
        }
        if self._receiver.legacy_headers:
            headers |= {
                "X-Sync-Event-Id": envelope["event_id"],
                "X-Sync-Event-Type": envelope["event_type"],
                "X-Sync-Timestamp": timestamp,
                "X-Sync-Signature": sign(secrets[0], timestamp, body),
            }
        tracing.inject(headers)
        try:
            response = self._client.post(self._receiver.url, content=body, headers=headers)
        except httpx.HTTPError as error:
            return None, repr(error)
        return response.status_code, response.text[:EXCERPT_CHARS]


def receiver_from(settings: Settings, command: str = "syncctl webhooks") -> Receiver:
    """The receiver, or SystemExit naming what is missing or wrong."""
    url, secret = settings.webhook_url or "", settings.webhook_secret.get_secret_value()
    named = (("SYNC_WEBHOOK_URL", url), ("SYNC_WEBHOOK_SECRET", secret.strip()))
    missing = [name for name, value in named if not value]
    if missing:
        raise SystemExit(f"{command}: {' and '.join(missing)} not set; refusing to start")
    try:
        secrets = parse_secrets(secret)
    except BadSecret as error:
        raise SystemExit(f"{command}: SYNC_WEBHOOK_SECRET: {error}") from error
    return Receiver(
        url, secrets, settings.webhook_max_backoff_seconds, settings.webhook_legacy_headers
    )
