"""Reading a whole topic from the beginning without a consumer group, for the replay tool."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from coordinator.replay.records import TopicRecord

log = logging.getLogger("coordinator.replay.topic_reader")


class TopicUnavailable(Exception):
    """The broker cannot be reached, or the topic does not exist."""


def _partitions(consumer: KafkaConsumer, topic: str, wait_seconds: float) -> list[int]:
    deadline = time.monotonic() + wait_seconds
    while True:
        found = consumer.partitions_for_topic(topic)
        if found:
            return sorted(found)
        if time.monotonic() >= deadline:
            raise TopicUnavailable(f"topic {topic!r} does not exist")
        time.sleep(0.2)


def read_topic(
    bootstrap: str,
    topic: str,
    *,
    idle_seconds: float = 2.0,
    stall_seconds: float = 15.0,
    batch: int = 2000,
) -> Iterator[TopicRecord]:
    """Every record, partition by partition in offset order within each poll.

    The end is where the end offsets said it is and then `idle_seconds` pass without a
    record. Tansu's end offsets are not always reliable, so reaching them alone does not end
    the read, and `stall_seconds` without any record ends it even if they were never reached.
    """
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=batch,
            client_id="syncctl-replay",
        )
    except KafkaError as error:
        raise TopicUnavailable(f"broker {bootstrap} unreachable: {error!r}") from error
    try:
        partitions = [TopicPartition(topic, p) for p in _partitions(consumer, topic, 5.0)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        try:
            ends = consumer.end_offsets(partitions)
        except KafkaError as error:
            log.warning("end offsets unavailable (%r); reading until the topic goes quiet", error)
            ends = {}
        last_record = time.monotonic()
        while True:
            polled = consumer.poll(timeout_ms=300)
            for tp in sorted(polled, key=lambda tp: tp.partition):
                for message in polled[tp]:
                    key = message.key.decode(errors="replace") if message.key else None
                    yield TopicRecord(tp.partition, message.offset, key, message.value)
            now = time.monotonic()
            if polled:
                last_record = now
                continue
            reached = all(consumer.position(tp) >= ends.get(tp, 0) for tp in partitions)
            quiet = now - last_record
            if (reached and quiet >= idle_seconds) or quiet >= stall_seconds:
                if not reached:
                    log.warning("end offsets %s never reached; stopping after %.0fs", ends, quiet)
                return
    finally:
        consumer.close()
