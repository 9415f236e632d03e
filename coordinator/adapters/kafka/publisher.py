"""Publishing to Kafka with an idempotent producer; a batch succeeds only when all are acked."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError


class PublishFailed(Exception):
    """The broker did not acknowledge every message of a batch."""


@dataclass(frozen=True)
class Message:
    """One record: key, JSON value and string headers."""

    key: str
    value: dict[str, Any]
    headers: dict[str, str]


def ensure_topic(bootstrap: str, topic: str, partitions: int) -> None:
    """Create the topic if it does not exist yet."""
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap, request_timeout_ms=5000, bootstrap_timeout_ms=3000
        )
    except KafkaError as error:
        raise PublishFailed(f"broker unreachable: {error!r}") from error
    try:
        admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    except TopicAlreadyExistsError:
        pass
    except KafkaError as error:
        raise PublishFailed(f"cannot create topic {topic}: {error!r}") from error
    finally:
        admin.close()


class KafkaPublisher:
    """Sends batches with acks=all and idempotence, so retries inside a batch keep order."""

    def __init__(self, bootstrap: str, topic: str, timeout_seconds: float = 10.0) -> None:
        self._topic = topic
        self._timeout = timeout_seconds
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=bootstrap,
                enable_idempotence=True,
                acks="all",
                linger_ms=2,
                max_in_flight_requests_per_connection=5,
                request_timeout_ms=5000,
                delivery_timeout_ms=int(timeout_seconds * 1000),
                max_block_ms=5000,
                bootstrap_timeout_ms=3000,
            )
        except KafkaError as error:
            raise PublishFailed(f"broker unreachable: {error!r}") from error

    def publish(self, messages: Sequence[Message]) -> None:
        """Send all messages and wait for the broker's acknowledgement of each."""
        try:
            futures = [
                self._producer.send(
                    self._topic,
                    key=m.key.encode(),
                    value=json.dumps(m.value, separators=(",", ":")).encode(),
                    headers=[(k, v.encode()) for k, v in m.headers.items()],
                )
                for m in messages
            ]
            self._producer.flush(timeout=self._timeout)
            for future in futures:
                future.get(timeout=self._timeout)
        except KafkaError as error:
            raise PublishFailed(f"broker did not acknowledge: {error!r}") from error

    def close(self) -> None:
        """Close without waiting long for a broker that may be gone."""
        self._producer.close(timeout=1)
