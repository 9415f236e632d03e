"""A Kafka consumer-group source of sync event envelopes, committed only when told."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.errors import KafkaError

from core.domain.events import Envelope, envelope_from_json
from core.kafka.current_records import decode_current
from core.telemetry import tracing

log = logging.getLogger("core.kafka.event_source")


class Delivery(NamedTuple):
    """One record: where it sits on the topic and the envelope it carries (a tuple: built
    for every record, where a frozen dataclass cost as much as the rest of the poll loop)."""

    partition: int
    offset: int
    envelope: Envelope
    traceparent: str | None = None  # the record's (else the event's); None when untraced


@dataclass(frozen=True)
class SourceConfig:
    bootstrap: str
    topic: str
    group: str
    max_poll_interval_ms: int = 300_000
    max_records: int = 1000
    # The broker answers a fetch as soon as data arrives or after this wait; the default
    # (500 ms) would dominate the time from a command to the status view showing it.
    fetch_max_wait_ms: int = 50
    from_beginning: bool = True
    # Static membership (KIP-345): a restarted instance with the same id gets its partitions
    # back without a rebalance if it returns within the session timeout. Unique per process.
    instance_id: str | None = None


class EventSource:
    """Polls batches in partition order; the caller commits after its own durable write."""

    def __init__(self, config: SourceConfig) -> None:
        self._config = config
        # Session and heartbeat follow the poll interval: Tansu completes a join only
        # after the rebalance timeout, so tests shorten it and everything scales down.
        session = min(config.max_poll_interval_ms, 10_000)
        self._consumer = KafkaConsumer(
            config.topic,
            bootstrap_servers=config.bootstrap,
            group_id=config.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest" if config.from_beginning else "latest",
            max_poll_interval_ms=config.max_poll_interval_ms,
            session_timeout_ms=session,
            heartbeat_interval_ms=max(session // 3, 100),
            max_poll_records=config.max_records,
            fetch_max_wait_ms=config.fetch_max_wait_ms,
            allow_auto_create_topics=False,  # the topic is made with its layout first (topic.py)
            group_instance_id=config.instance_id,
        )

    def poll(self, timeout_ms: int = 500) -> list[Delivery]:
        """The next batch, ordered by partition then offset; undecodable records are skipped."""
        batch: list[Delivery] = []
        traced = tracing.enabled()
        for tp, records in sorted(
            self._consumer.poll(timeout_ms=timeout_ms).items(), key=lambda item: item[0].partition
        ):
            for record in records:
                envelope = decode(record.value, tp.partition, record.offset)
                if envelope is None:
                    continue
                traceparent = _traceparent(record.headers, envelope) if traced else None
                batch.append(Delivery(tp.partition, record.offset, envelope, traceparent))
        return batch

    def commit(self, deliveries: list[Delivery]) -> None:
        """Commit past the last offset of each partition in the batch."""
        last: dict[int, int] = {}
        for d in deliveries:
            last[d.partition] = max(d.offset, last.get(d.partition, -1))
        offsets = {
            TopicPartition(self._config.topic, p): OffsetAndMetadata(o + 1, "", -1)
            for p, o in last.items()
        }
        if offsets:
            self._consumer.commit(offsets)

    def lag(self) -> dict[int, int]:
        """Records not yet consumed per assigned partition."""
        assigned = list(self._consumer.assignment())
        if not assigned:
            return {}
        try:
            ends = self._consumer.end_offsets(assigned)
        except KafkaError:
            return {}
        return {tp.partition: max(0, ends[tp] - self._consumer.position(tp)) for tp in assigned}

    def close(self) -> None:
        self._consumer.close()


def decode(value: bytes, partition: int, offset: int) -> Envelope | None:
    """An envelope, or None (logged) for a record this code cannot read."""
    envelope = decode_current(value)
    if envelope is not None:
        return envelope
    try:
        return envelope_from_json(_parse(value))
    except (ValueError, KeyError, TypeError) as error:
        log.error("skipping undecodable record %s@%s: %r", partition, offset, error)
        return None


def _traceparent(headers: list[tuple[str, bytes]] | None, envelope: Envelope) -> str | None:
    """The publish span's traceparent from the record headers, else the stored one."""
    for key, value in headers or ():
        if key == "traceparent":
            return value.decode("latin-1")
    return envelope.traceparent


def _parse(value: bytes) -> Any:
    """JSON by orjson, a third of the json module's time per envelope (the largest share of
    the projector's decoding); what orjson refuses (NaN, integers beyond 64 bits) by json."""
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return json.loads(value)
