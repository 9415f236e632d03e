"""Time from one broker's SIGKILL to the relay publishing again, under a steady trickle.

Rows go into the outbox at `per_second` for users spread over every partition; the relay
publishes them (acks=all, RF 3, min.insync.replicas 2). After the kill, the batch in flight
waits for the controller to fence the broker (broker.session.timeout.ms, 9 s by default) and
for new leaders; "publishing again" is the end of the first batch begun after the kill and
acknowledged whole.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.apache_kafka.relay_rate import PARTITIONS, fill_outbox, outbox_rows
from coordinator.adapters.kafka.publisher import KafkaPublisher, Message, PublishResult
from coordinator.adapters.kafka.topic import ensure_topic
from coordinator.adapters.postgres.outbox_store import OutboxStore, RelayLeadership
from coordinator.dev.apache_kafka import KafkaCluster
from coordinator.relay.outbox_relay import OutboxRelay, RelayConfig
from core.database import make_engine


@dataclass
class Calls:
    """(start, end, acknowledged whole) of every publish call."""

    seen: list[tuple[float, float, bool]] = field(default_factory=list)


class TimedPublisher(KafkaPublisher):
    calls: Calls

    def publish(self, messages: Sequence[Message]) -> PublishResult:
        start = time.perf_counter()
        result = super().publish(messages)
        whole = len(result.acked) == len(messages)
        self.calls.seen.append((start, time.perf_counter(), whole))
        return result


@dataclass(frozen=True)
class Loss:
    resumed_after: float  # seconds from the kill to the first whole batch begun after it
    longest_call: float  # the longest publish call around the kill


def measure_loss(
    url: str, dsn: str, cluster: KafkaCluster, topic: str, node_id: int, per_second: float
) -> Loss:
    ensure_topic(cluster.bootstrap, topic, PARTITIONS, 3, 2)
    calls = Calls()

    def connect(config: RelayConfig) -> KafkaPublisher:
        publisher = TimedPublisher(config.bootstrap, config.topic)
        publisher.calls = calls
        return publisher

    engine = make_engine(url, pool_size=2)
    stop, feeding = threading.Event(), threading.Event()
    config = RelayConfig(
        bootstrap=cluster.bootstrap,
        topic=topic,
        partitions=PARTITIONS,
        max_backoff_seconds=1,
        replication_factor=3,
        min_insync_replicas=2,
    )
    relay = OutboxRelay(config, OutboxStore(engine), RelayLeadership(url), stop, connect)
    rows = outbox_rows(int(per_second * 60), 200)

    def feed() -> None:
        for start in range(0, len(rows), 10):
            if feeding.is_set():
                return
            fill_outbox(dsn, rows[start : start + 10])
            time.sleep(10 / per_second)

    threads = [threading.Thread(target=t, daemon=True) for t in (relay.run, feed)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(4)
        killed = time.perf_counter()
        cluster.kill(node_id)
        deadline = killed + 60
        while time.perf_counter() < deadline:
            after = [end for start, end, whole in calls.seen if start > killed and whole]
            if after:
                break
            time.sleep(0.05)
        else:
            raise SystemExit("the relay did not publish again within 60 s of the kill")
        around = [end - start for start, end, _ in calls.seen if end > killed]
        return Loss(min(after) - killed, max(around))
    finally:
        feeding.set()
        stop.set()
        for thread in threads:
            thread.join(30)
        engine.dispose()
        cluster.start(node_id)
        cluster.wait_ready()
