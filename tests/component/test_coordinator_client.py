"""The worker's reports against a real loopback HTTP server: a busy coordinator is waited for."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from consumers.coordinator_client import CoordinatorClient, ReportFailed


class Coordinator(ThreadingHTTPServer):
    """Answers each POST with the next (status, Retry-After) of its script, then 202."""

    def __init__(self, script: list[tuple[int, str | None]]) -> None:
        super().__init__(("127.0.0.1", 0), Answer)
        self.script = list(script)
        self.seen: list[tuple[float, str]] = []


class Answer(BaseHTTPRequestHandler):
    server: Coordinator

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.server.seen.append((time.monotonic(), self.path))
        status, retry_after = self.server.script.pop(0) if self.server.script else (202, None)
        body = json.dumps({"detail": "busy" if status >= 400 else "ok"}).encode()
        self.send_response(status)
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def coordinator(script: list[tuple[int, str | None]]) -> Iterator[Coordinator]:
    server = Coordinator(script)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def client_of(server: Coordinator, **options: Any) -> CoordinatorClient:
    host, port = server.server_address[:2]
    return CoordinatorClient(f"http://{host!s}:{port}", lambda user: "token", **options)


def test_a_429_is_retried_after_the_time_it_asks_for() -> None:
    with coordinator([(429, "1"), (429, "1")]) as server:
        client_of(server).progress("u", "t1", 10.0, {})
    times = [at for at, _ in server.seen]
    assert [path for _, path in server.seen] == ["/sync/tasks/t1/progress"] * 3
    assert times[1] - times[0] >= 0.95 and times[2] - times[1] >= 0.95


def test_a_long_retry_after_is_cut_to_the_longest_wait() -> None:
    with coordinator([(429, "3600"), (503, "3600")]) as server:
        client_of(server, longest_wait=0.2).complete("u", "t2", {"done": 1})
    assert len(server.seen) == 3


def test_busy_through_every_attempt_and_other_refusals_fail_the_report() -> None:
    with coordinator([(429, "0")] * 3) as server, pytest.raises(ReportFailed, match="busy"):
        client_of(server, attempts=3).fail("u", "t3", "boom")
    assert len(server.seen) == 3
    with coordinator([(400, None)]) as server, pytest.raises(ReportFailed, match="400"):
        client_of(server).progress("u", "t4", 1.0, {})
    assert len(server.seen) == 1
