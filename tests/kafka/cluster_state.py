"""What the tests ask the real cluster: replicas in sync, records on a topic."""

from __future__ import annotations

import time

from kafka import KafkaAdminClient


def in_sync_replicas(bootstrap: str, topic: str) -> dict[int, int]:
    """Replicas in sync per partition of the topic."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        (described,) = admin.describe_topics([topic])
    finally:
        admin.close()
    return {p["partition_index"]: len(p["isr_nodes"]) for p in described["partitions"]}


def wait_fully_replicated(bootstrap: str, topic: str, replicas: int, timeout: float = 60) -> None:
    """Return once every partition has `replicas` replicas in sync (a restarted one caught up)."""
    deadline = time.monotonic() + timeout
    seen: dict[int, int] = {}
    while time.monotonic() < deadline:
        seen = in_sync_replicas(bootstrap, topic)
        if seen and min(seen.values()) == replicas:
            return
        time.sleep(0.5)
    raise AssertionError(f"replicas in sync per partition of {topic}: {seen}")
