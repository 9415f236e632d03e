"""--stages: split click-to-view latency at the topic, with a plain consumer of its own.

A process assigned every partition of the topic (no group, so no join wait), reading from
the end, notes for each (user, version) the record's CreateTime (set by the relay's
producer when it sends, wall clock in ms) and when it fetched the record. Joined with the
SQL probe's (clicked, answered, seen) per command, that gives four stages:
  click -> answer        : waiting for a connection, the API's queue, its transaction
  answer -> relay send   : outbox wait, NOTIFY, the relay's read of the batch
  relay send -> fetched  : producer linger, broker ack, a fetch (this consumer's, which
                           waits at most 10 ms; the projector's waits at most 50 ms)
  fetched -> view        : the projector's fetch, its transaction, commit; the probe's poll
It costs CPU (kafka-python decodes every record), so it is off unless asked for.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import signal
import time
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from bench.common.loadgen import percentile
from bench.end_to_end.probe import ProbeResult

Arrivals = dict[tuple[str, int], tuple[float, float]]  # (user, version) -> (sent, fetched)


def watch_main(bootstrap: str, topic: str, stop: Any, ready: Any, outbox: Any) -> None:
    """Read the topic from its end until stop is set; send the arrivals back."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=10)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    consumer.assign(partitions)
    consumer.seek_to_end()
    for tp in partitions:
        consumer.position(tp)  # resolve the end now, not at the first poll
    offset = time.time() - time.monotonic()  # wall clock -> monotonic
    ready.set()
    arrivals: Arrivals = {}
    while not stop.is_set():
        for records in consumer.poll(timeout_ms=100).values():
            fetched = time.monotonic()
            for record in records:
                body = json.loads(record.value)
                sent = record.timestamp / 1000 - offset
                arrivals[(body["user_id"], int(body["version"]))] = (sent, fetched)
    consumer.close()
    outbox.put(arrivals)


class StageWatcher:
    """The parent's handle on the watcher process."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        context = mp.get_context("spawn")
        self._stop, ready, self._outbox = context.Event(), context.Event(), context.Queue()
        self._process = context.Process(
            target=watch_main, args=(bootstrap, topic, self._stop, ready, self._outbox), daemon=True
        )
        self._process.start()
        if not ready.wait(60):
            self.close()
            raise RuntimeError("the stage watcher did not start")

    @property
    def pid(self) -> int:
        return self._process.pid or 0

    def finish(self) -> Arrivals:
        self._stop.set()
        try:
            arrivals: Arrivals = self._outbox.get(timeout=30)
        finally:
            self.close()
        return arrivals

    def close(self) -> None:
        if self._process.is_alive():
            self._stop.set()
            self._process.join(5)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)


def stages(view: ProbeResult, arrivals: Arrivals) -> dict[str, list[float]]:
    """Milliseconds per stage for every command both the watcher and the probe saw."""
    result: dict[str, list[float]] = {
        "click->answer": [],
        "answer->sent": [],
        "sent->fetched": [],
        "fetched->view": [],
    }
    for user, version, clicked, answered, seen in view.seen:
        if (user, version) not in arrivals:
            continue
        sent, fetched = arrivals[(user, version)]
        result["click->answer"].append((answered - clicked) * 1000)
        result["answer->sent"].append((sent - answered) * 1000)
        result["sent->fetched"].append((fetched - sent) * 1000)
        result["fetched->view"].append((seen - fetched) * 1000)
    return result


def format_stages(split: dict[str, list[float]]) -> str:
    parts = [
        f"{name} {percentile(v, 50):.1f}/{percentile(v, 95):.1f}/{percentile(v, 99):.1f}"
        for name, v in split.items()
        if v
    ]
    count = len(next(iter(split.values()), []))
    return f"stages p50/p95/p99 ms over {count} commands: " + ", ".join(parts)
