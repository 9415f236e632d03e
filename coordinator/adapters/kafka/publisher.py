"""Publishing to Kafka with an idempotent producer; each record ends acked, refused or failed."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaProducer
from kafka.errors import (
    CorruptRecordError,
    InvalidRecordError,
    InvalidTimestampError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    UnsupportedForMessageFormatError,
)
from kafka.record.default_records import DefaultRecordBatchBuilder

log = logging.getLogger("coordinator.relay")
DEFAULT_MAX_MESSAGE_BYTES = 1_000_000  # Kafka's default max.message.bytes (1 MB)

# Refusals about the record itself: sending it again can only fail again. Everything else
# (timeouts, lost connections, authorization, a fenced producer) is about the broker or the
# client and passes: the record waits in the outbox. kafka-python already splits a batch the
# broker finds too large and names the one bad record of an invalid batch, so an error of
# these kinds on a record's future is that record's own.
REFUSED_FOR_GOOD: tuple[type[KafkaError], ...] = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    InvalidRecordError,
    CorruptRecordError,
    InvalidTimestampError,
    UnsupportedForMessageFormatError,
)


class PublishFailed(Exception):
    """The broker cannot be reached or used at all: nothing of the batch was sent."""


@dataclass(frozen=True)
class Message:
    """One record: key, JSON value and string headers."""

    key: str
    value: dict[str, Any]
    headers: dict[str, str]


@dataclass
class PublishResult:
    """What became of each message of a batch, by its index in the batch."""

    acked: set[int] = field(default_factory=set)
    refused: dict[int, str] = field(default_factory=dict)
    failure: str | None = None  # why the rest was neither acked nor refused (retry later)


def refused_for_good(error: BaseException) -> bool:
    """True when the broker (or the producer's own check) rejects the record itself."""
    return isinstance(error, REFUSED_FOR_GOOD) and not getattr(error, "retriable", False)


def describe(error: BaseException) -> str:
    """The error as one line, for logs and the dead-letter table."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def too_large(size: int, limit: int) -> str | None:
    """Why a record of `size` bytes cannot be sent, or None if it fits."""
    if size <= limit:
        return None
    return (
        f"MessageSizeTooLargeError: record of {size:,} bytes exceeds the maximum message "
        f"size of {limit:,} bytes (SYNC_KAFKA_MAX_MESSAGE_BYTES)"
    )


@dataclass(frozen=True)
class _Record:
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]

    @property
    def size(self) -> int:
        """Upper bound of the record as a batch of one: what max.message.bytes limits."""
        return int(
            DefaultRecordBatchBuilder.estimate_size_in_bytes(self.key, self.value, self.headers)
        )


def encode(message: Message) -> _Record:
    """The bytes a message is sent as."""
    return _Record(
        key=message.key.encode(),
        value=json.dumps(message.value, separators=(",", ":")).encode(),
        headers=[(k, v.encode()) for k, v in message.headers.items()],
    )


class KafkaPublisher:
    """Sends batches with acks=all and idempotence, so retries inside a batch keep order."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        timeout_seconds: float = 30.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self._topic = topic
        self._timeout = timeout_seconds
        self._max_bytes = max_message_bytes
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=bootstrap,
                enable_idempotence=True,
                acks="all",
                linger_ms=2,
                max_in_flight_requests_per_connection=5,
                max_request_size=max_message_bytes,
                # A request unanswered this long is sent again (same sequence numbers); at
                # most a third of the delivery timeout, which kafka-python requires above it.
                request_timeout_ms=min(5000, int(timeout_seconds * 1000) // 3),
                delivery_timeout_ms=int(timeout_seconds * 1000),
                max_block_ms=5000,
                bootstrap_timeout_ms=3000,
                allow_auto_create_topics=False,
            )
        except KafkaError as error:
            raise PublishFailed(f"broker unreachable: {error!r}") from error

    def publish(self, messages: Sequence[Message]) -> PublishResult:
        """Send in order and wait for the broker's answer about each message.

        A record over the size limit is refused here, without a round trip. The first
        record that cannot be handed to the producer stops the sending, so nothing after
        it (perhaps the same user's next event) overtakes it.
        """
        result = PublishResult()
        sent: list[tuple[int, Any]] = []
        for index, message in enumerate(messages):
            record = encode(message)
            reason = too_large(record.size, self._max_bytes)
            if reason is not None:
                result.refused[index] = reason
                continue
            try:
                future = self._producer.send(
                    self._topic, key=record.key, value=record.value, headers=record.headers
                )
            except KafkaError as error:
                if refused_for_good(error):
                    result.refused[index] = describe(error)
                    continue
                result.failure = f"not sent: {describe(error)}"
                break
            sent.append((index, future))
        wait = self._timeout
        try:
            self._producer.flush(timeout=self._timeout)
        except KafkaError as error:
            result.failure = result.failure or f"not acknowledged: {describe(error)}"
            wait = 0.01  # the time is spent: collect what has an answer already
        for index, future in sent:
            try:
                future.get(timeout=wait)
            except KafkaError as error:
                if refused_for_good(error):
                    result.refused[index] = describe(error)
                else:
                    result.failure = result.failure or f"not acknowledged: {describe(error)}"
            else:
                result.acked.add(index)
        return result

    def close(self) -> None:
        """Close without waiting long for a broker that may be gone; records still unsent
        are dropped (their rows wait in the outbox) and the producer's thread stops."""
        try:
            self._producer.close(timeout=1)
        except KafkaError as error:
            # kafka-python's close() raises when its flush times out, before it stops the
            # sender thread: stop it the way close() would have.
            log.info("producer closed with records unsent: %s", describe(error))
            sender = getattr(self._producer, "_sender", None)
            if sender is not None:
                sender.force_close()
