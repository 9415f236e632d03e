"""Read a topic back from the beginning, without a consumer group."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, TopicPartition


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: str
    headers: dict[str, str]
    value: dict[str, Any]


def read_topic(bootstrap: str, topic: str, expect: int, timeout: float = 30.0) -> list[Record]:
    """All records, in partition then offset order, once at least `expect` arrived (or timeout)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        deadline = time.monotonic() + timeout
        partitions: set[int] | None = None
        while not partitions and time.monotonic() < deadline:
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                time.sleep(0.2)
        if not partitions:
            return []
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        consumer.seek_to_beginning()
        records: list[Record] = []
        while len(records) < expect and time.monotonic() < deadline:
            for tp, messages in consumer.poll(timeout_ms=300).items():
                records.extend(
                    Record(
                        partition=tp.partition,
                        offset=m.offset,
                        key=m.key.decode(),
                        headers={k: v.decode() for k, v in m.headers},
                        value=json.loads(m.value),
                    )
                    for m in messages
                )
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()


def by_user(records: list[Record]) -> dict[str, list[Record]]:
    """Records grouped by key, each group in the order the topic holds them."""
    groups: dict[str, list[Record]] = {}
    for record in records:
        groups.setdefault(record.key, []).append(record)
    return groups
