"""The whole system as subprocesses on a database and topic of its own."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import IO

from coordinator.adapters.kafka.topic import ensure_topic_waiting
from tests.e2e.processes import SECRET, Api, running_api, spawn, stop
from tests.support.random_refs import random_name

# Tansu completes a consumer-group join only after the rebalance timeout.
FAST_GROUPS = {"consumer_max_poll_interval_ms": "1500"}


@dataclass
class Stack:
    api: Api
    settings: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)  # non-SYNC_ variables (OTEL_*)

    def start(
        self, name: str, command: str, stderr: IO[bytes] | None = None, **overrides: str
    ) -> subprocess.Popen[bytes]:
        """Start (or restart) one `syncctl` process with the stack's settings."""
        self.processes[name] = spawn(
            command, stderr, self.extra_env, **{**self.settings, **overrides}
        )
        return self.processes[name]

    def stop_all(self) -> None:
        for process in self.processes.values():
            stop(process)


def create_topic(settings: dict[str, str]) -> None:
    """The stack's topic with the layout its settings name."""
    isr = settings.get("kafka_min_insync_replicas")
    ensure_topic_waiting(
        settings["kafka_bootstrap"],
        settings["kafka_topic"],
        int(settings["kafka_partitions"]),
        int(settings.get("kafka_replication_factor", "1")),
        int(isr) if isr else None,
        wait_seconds=10,
    )


@contextmanager
def running_stack(
    database_url: str,
    kafka_bootstrap: str,
    *,
    components: tuple[str, ...],
    extra_env: dict[str, str] | None = None,
    **settings: str,
) -> Iterator[Stack]:
    """API plus the named components (relay, project, work, reap), sharing settings."""
    common = {
        "database_url": database_url,
        "kafka_bootstrap": kafka_bootstrap,
        "kafka_topic": random_name("events"),
        "kafka_partitions": "4",
        "jwt_secret": SECRET,
        "projector_group": random_name("projector"),
        "worker_group": random_name("worker"),
        "relay_max_backoff_seconds": "1",
        **FAST_GROUPS,
        **settings,
    }
    with ExitStack() as cleanup:
        api = cleanup.enter_context(running_api(database_url, extra_env, **settings))
        stack = Stack(
            api=api, settings={**common, "api_url": api.base_url}, extra_env=extra_env or {}
        )
        cleanup.callback(stack.stop_all)
        create_topic(common)  # before any client asks for it, as `syncctl topic` does in compose
        for component in components:
            stack.start(component, component)
        yield stack
