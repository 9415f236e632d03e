"""Start `syncctl` processes as subprocesses, the way they run in production."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any
from uuid import uuid4

from coordinator.api.auth.tokens import issue_token
from coordinator.dev.embedded import free_port
from coordinator.dev.processes import stop_processes, wait_ready

SECRET = f"test-secret-{uuid4().hex}"


def process_env(extra: dict[str, str] | None = None, **settings: str) -> dict[str, str]:
    """The parent's environment without SYNC_* or OTEL_* leaking in, plus these settings and
    `extra` variables (as named, e.g. OTEL_TRACES_EXPORTER)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNC_", "OTEL_"))}
    env.update({f"SYNC_{k.upper()}": v for k, v in settings.items()})
    env.update(extra or {})
    return env


def spawn(
    command: str,
    stderr: IO[bytes] | None = None,
    extra_env: dict[str, str] | None = None,
    **settings: str,
) -> subprocess.Popen[bytes]:
    """A `syncctl` process; its log (stderr) goes to the given file, else to the test's."""
    return subprocess.Popen(
        [sys.executable, "-m", "coordinator.cli", command],
        env=process_env(extra_env, **settings),
        stderr=stderr,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    stop_processes(process)


@dataclass
class Api:
    base_url: str
    process: subprocess.Popen[bytes]

    def token(self, user_id: str, ttl: int = 600) -> str:
        return issue_token(user_id, SECRET, ttl)

    def headers(self, user_id: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user_id)}", **extra}


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    wait_ready(url, process, timeout)


@contextmanager
def running_api(
    database_url: str, extra_env: dict[str, str] | None = None, **settings: Any
) -> Iterator[Api]:
    port = int(settings.pop("api_port", 0)) or free_port()  # fixed ahead: a redirect URI
    process = spawn(
        "api",
        extra_env=extra_env,
        database_url=database_url,
        jwt_secret=SECRET,
        api_port=str(port),
        **settings,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(f"{base}/healthz", process)
        yield Api(base, process)
    finally:
        stop(process)


@contextmanager
def running_relay(
    database_url: str, kafka_bootstrap: str, topic: str, **settings: Any
) -> Iterator[subprocess.Popen[bytes]]:
    process = spawn(
        "relay",
        database_url=database_url,
        kafka_bootstrap=kafka_bootstrap,
        kafka_topic=topic,
        kafka_partitions="4",
        relay_max_backoff_seconds="1",
        **settings,
    )
    try:
        yield process
    finally:
        stop(process)
