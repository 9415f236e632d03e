"""uvicorn's httptools protocol with the request head bounded: its size, its header count and
the time it may take to arrive.

uvicorn with httptools reads a request line and headers of any size, any number of header
fields, and at any pace: ten megabytes of headers reached the app, and a client sending a byte
a second held its connection for ever. Here, while the head arrives, its bytes and fields are
counted as the parser hands them over; past `max_bytes` or `max_count` the client gets a 431
problem document and the connection is closed, nothing buffered further. A head not complete
`seconds` after its first byte (or after the connection opened) gets a 408 the same way. The
body's own deadline is RequestGuard's (request_guard.py), which reads it.

Every close lingers (`LingeringClose`): the answer is followed by a FIN and what the client
still sends is read and dropped for up to LINGER_SECONDS, since closing a socket with unread
bytes resets the connection, and a client still uploading could lose the 408 before reading it.

`syncctl api` passes this class to uvicorn by its import path (so each worker process loads
it) after `configure(settings)`; the app itself knows nothing of it.
See docs/decisions/bounded-request-head.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ClassVar, cast
from uuid import uuid4

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from coordinator.api.problems.documents import MAX_INSTANCE, TYPE_BASE, clip
from core.settings import Settings

IMPORT_PATH = "coordinator.api.admission.bounded_http:BoundedHttpTools"
LINGER_SECONDS = 2.0
log = logging.getLogger("coordinator.api")


@dataclass(frozen=True)
class HeadLimits:
    max_bytes: int = 16 * 1024
    max_count: int = 100
    seconds: float = 10.0


def configure(settings: Settings) -> None:
    """Set the limits every connection of this process is held to."""
    BoundedHttpTools.limits = HeadLimits(
        settings.max_header_bytes, settings.max_header_count, settings.request_head_seconds
    )


class BoundedHttpTools(HttpToolsProtocol):
    """HttpToolsProtocol that refuses a head over `limits` (431) or too slow (408)."""

    limits: ClassVar[HeadLimits] = HeadLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = self._head_fields = 0
        self._deadline: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        lingering = LingeringClose(transport, self._stop_reading)
        super().connection_made(cast(asyncio.Transport, lingering))
        self._start_clock()

    def _stop_reading(self) -> None:
        self._refused = True  # the connection is closing: nothing it sends is parsed

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_clock()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._refused:
            super().data_received(data)

    def on_message_begin(self) -> None:
        if self._refused:
            return
        super().on_message_begin()
        self._head_bytes = self._head_fields = 0
        self._start_clock()

    def on_url(self, url: bytes) -> None:
        if not self._refused and self._counted(len(url), 0):
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._refused and self._counted(len(name) + len(value) + 4, 1):
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if not self._refused:
            self._stop_clock()
            super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()

    def _counted(self, size: int, fields: int) -> bool:
        """Count a piece of the head; False once it is over a limit (and refused)."""
        self._head_bytes += size
        self._head_fields += fields
        limits = self.limits
        if self._head_fields > limits.max_count:
            self._refuse(431, f"the request has more than {limits.max_count} header fields")
        elif self._head_bytes > limits.max_bytes:
            self._refuse(431, f"the request line and headers are over {limits.max_bytes} bytes")
        return not self._refused

    def _start_clock(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.limits.seconds, self._too_slow)

    def _stop_clock(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        seconds = self.limits.seconds
        self._refuse(408, f"the request line and headers did not arrive within {seconds:g} s")

    def _refuse(self, status: int, detail: str) -> None:
        """Answer with a problem document (unless a response is under way) and hang up."""
        self._refused = True
        self._stop_clock()
        if self.transport.is_closing():
            return
        correlation_id = str(uuid4())
        log.warning("refused a request head (%d): %s; %s", status, detail, correlation_id)
        if self.cycle is None or self.cycle.response_complete:
            url = getattr(self, "url", b"") or b"/"  # none before the first byte of a request
            self.transport.write(_answer(status, detail, url, correlation_id))
        self.transport.close()


class LingeringClose:
    """A transport whose close() sends the FIN at once and the socket's close a little later,
    once the client has hung up or LINGER_SECONDS have passed; reads go on meanwhile, and
    `on_close` tells the protocol to drop what arrives."""

    def __init__(self, transport: asyncio.Transport, on_close: Any) -> None:
        self._transport, self._on_close = transport, on_close
        self._closing = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def is_closing(self) -> bool:
        return self._closing or self._transport.is_closing()

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._on_close()
        transport = self._transport
        if transport.is_closing() or not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()  # after what is buffered: the answer goes out first
        transport.resume_reading()  # read on (and drop) while the client finishes
        asyncio.get_running_loop().call_later(LINGER_SECONDS, transport.close)


def _answer(status: int, detail: str, url: bytes, correlation_id: str) -> bytes:
    kind = "request-timeout" if status == 408 else "request-head-too-large"
    phrase = HTTPStatus(status).phrase
    body = json.dumps(
        {
            "type": f"{TYPE_BASE}{kind}",
            "title": phrase,
            "status": status,
            "detail": detail,
            "instance": clip(url.split(b"?", 1)[0].decode("latin-1"), MAX_INSTANCE),
            "correlation_id": correlation_id,
        },
        ensure_ascii=True,
    ).encode()
    head = (
        f"HTTP/1.1 {status} {phrase}\r\n"
        "content-type: application/problem+json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n"
        "cache-control: no-store\r\n"
        "x-content-type-options: nosniff\r\n\r\n"
    )
    return head.encode("ascii") + body
