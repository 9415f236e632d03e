"""A plain Server-Sent Events reader over httpx, for the status stream's tests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass(frozen=True)
class Message:
    """One dispatched event, or a comment line (a heartbeat) when `comment` is set."""

    event: str = "message"
    id: str | None = None
    data: str = ""
    comment: str | None = None

    def json(self) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self.data)
        return body


@dataclass
class EventStream:
    """The messages of one open stream, read as they arrive."""

    response: httpx.Response
    seen: list[Message] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._messages = _parse(self.response.iter_lines())

    def next(self) -> Message:
        message = next(self._messages)
        self.seen.append(message)
        return message

    def events_until(self, done: Callable[[dict[str, Any]], bool], timeout: float) -> list[Message]:
        """Status events up to the first for which `done` holds; fails after `timeout`."""
        events: list[Message] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.next()
            if message.comment is None and message.event == "status":
                events.append(message)
                if done(message.json()):
                    return events
        raise AssertionError(f"not done in {timeout}s; events: {[e.data for e in events]}")

    def quiet_for(self, seconds: float) -> list[Message]:
        """Everything received during `seconds` (heartbeats keep the reads returning)."""
        deadline = time.monotonic() + seconds
        got: list[Message] = []
        while time.monotonic() < deadline:
            got.append(self.next())
        return got


def _parse(lines: Iterator[str]) -> Iterator[Message]:
    fields: dict[str, str] = {}
    data: list[str] = []
    for line in lines:
        if line.startswith(":"):
            yield Message(comment=line[1:].strip())
        elif line == "":
            if data:  # as EventSource does: a block without data (`retry:`) is no event
                yield Message(
                    event=fields.get("event", "message"), id=fields.get("id"), data="\n".join(data)
                )
            fields, data = {}, []
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            else:
                fields[name] = value


@contextmanager
def open_stream(
    base_url: str, headers: dict[str, str], read_timeout: float = 10
) -> Iterator[EventStream]:
    """GET /sync/status/stream; the stream is closed on exit."""
    timeout = httpx.Timeout(5, read=read_timeout)
    with (
        httpx.Client(timeout=timeout) as client,
        client.stream("GET", f"{base_url}/sync/status/stream", headers=headers) as response,
    ):
        yield EventStream(response)
