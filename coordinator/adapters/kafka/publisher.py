"""Publishing to Kafka with an idempotent producer; each record ends acked, refused or failed."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType
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
# client and passes: the record waits in the outbox. kafka-python splits a batch the broker
# finds too large, but then fails the other batches it holds with the same error: a record
# refused in company is sent again alone before it counts as refused (KafkaPublisher.publish).
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


def too_large(size: int, limit: int, source: str = "SYNC_KAFKA_MAX_MESSAGE_BYTES") -> str | None:
    """Why a record of `size` bytes cannot be sent, or None if it fits."""
    if size <= limit:
        return None
    return (
        f"MessageSizeTooLargeError: record of {size:,} bytes exceeds the maximum message "
        f"size of {limit:,} bytes ({source})"
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
        read_topic_limit: bool = True,
    ) -> None:
        self._topic = topic
        self._read_topic_limit = read_topic_limit
        self._timeout = timeout_seconds
        self._setting = max_message_bytes
        # Why each value: docs/operations.md (producer settings).
        self._config: dict[str, Any] = dict(
            bootstrap_servers=bootstrap,
            enable_idempotence=True,
            acks="all",
            linger_ms=2,
            max_in_flight_requests_per_connection=5,
            max_request_size=max_message_bytes,
            # A request unanswered this long is sent again (same sequence numbers); at most a
            # third of the delivery timeout, which kafka-python requires to be above it.
            request_timeout_ms=min(5000, int(timeout_seconds * 1000) // 3),
            delivery_timeout_ms=int(timeout_seconds * 1000),
            max_block_ms=5000,
            bootstrap_timeout_ms=3000,
            allow_auto_create_topics=False,
        )
        self._limit, self._source = self._learn_limit()
        self._producer = self._open()

    def _open(self) -> KafkaProducer:
        try:
            return KafkaProducer(**self._config)
        except KafkaError as error:
            raise PublishFailed(f"broker unreachable: {error!r}") from error

    def publish(self, messages: Sequence[Message]) -> PublishResult:
        """Send in order and wait for the broker's answer about each message.

        A record over the size limit (this setting, or the topic's max.message.bytes if
        smaller) is refused here, without a round trip. The first record that cannot be
        handed to the producer stops the sending, so nothing after it (perhaps the same
        user's next event) overtakes it.

        When the broker refuses a record all the same (its limit was lowered meanwhile),
        kafka-python's idempotent producer fails every batch it holds with that error and
        stays failed: the limit is read again, a record over it is refused, and the others
        wait in the outbox for the next attempt, on a new producer.
        """
        result, by_broker = self._send(messages)
        if by_broker:
            self._reopen()
            self._limit, self._source = self._learn_limit()
            for index in sorted(by_broker):
                size = encode(messages[index]).size
                if len(messages) > 1 and size <= self._limit:
                    del result.refused[index]
                    result.failure = result.failure or (
                        "not acknowledged: the broker refused a record of this batch for its "
                        "size, which failed the batch; sent again"
                    )
                else:
                    result.refused[index] += f" (the topic's limit: {self._limit:,} bytes)"
        return result

    def _learn_limit(self) -> tuple[int, str]:
        """The smaller of the setting and the topic's max.message.bytes, and which it is."""
        found = (
            topic_message_limit(self._config["bootstrap_servers"], self._topic)
            if self._read_topic_limit
            else None
        )
        if found is not None and found < self._setting:
            return found, f"the topic's max.message.bytes, {self._topic}"
        return self._setting, "SYNC_KAFKA_MAX_MESSAGE_BYTES"

    def _reopen(self) -> None:
        self.close()
        self._producer = self._open()

    def _send(self, messages: Sequence[Message]) -> tuple[PublishResult, set[int]]:
        """What became of each message, and which refusals were the broker's."""
        result = PublishResult()
        by_broker: set[int] = set()
        sent: list[tuple[int, Any]] = []
        for index, message in enumerate(messages):
            record = encode(message)
            if record.size > self._limit and self._limit < self._setting:
                self._limit, self._source = self._learn_limit()  # the topic's was raised?
            reason = too_large(record.size, self._limit, self._source)
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
                    by_broker.add(index)
                else:
                    result.failure = result.failure or f"not acknowledged: {describe(error)}"
            else:
                result.acked.add(index)
        return result, by_broker

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


def topic_message_limit(bootstrap: str, topic: str) -> int | None:
    """The topic's max.message.bytes, or None where the broker does not say (Tansu)."""
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap, request_timeout_ms=5000, bootstrap_timeout_ms=3000
        )
    except KafkaError:
        return None
    try:
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, configs=["max.message.bytes"])
        found = admin.describe_configs([resource])
        return int(found["topic"][topic]["max.message.bytes"]["value"])
    except (KafkaError, KeyError, TypeError, ValueError):
        return None
    finally:
        admin.close()
