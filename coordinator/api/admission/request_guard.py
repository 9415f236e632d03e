"""ASGI middleware around every request: correlation id, body size limit, last-resort 500,
and the headers every response carries."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from uuid import uuid4

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coordinator.api.input_rules import HEADER_TEXT
from coordinator.api.problems.documents import problem
from core.telemetry import tracing
from core.telemetry.logs import bind

log = logging.getLogger("coordinator.api")
# Every answer may carry a user's data (status, tasks, mail, problem details): no cache keeps
# it unless the response says otherwise (only the page's static files do), and no browser
# guesses another type than the one declared.
RESPONSE_HEADERS = ((b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff"))


class ResponseHeaders:
    """Adds RESPONSE_HEADERS to every HTTP response that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers += [pair for pair in RESPONSE_HEADERS if pair[0] not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RequestGuard:
    """Names the request, refuses oversized bodies before any work, turns crashes into 500s.

    The body is read here, up to the path's limit and within `body_seconds`, and replayed to
    the app: a client that sends more (with or without Content-Length) gets a 413, one that
    sends it too slowly a 408 and the connection closed, and nothing else runs.
    """

    def __init__(
        self, app: ASGIApp, body_limit: Callable[[str], int], body_seconds: float = 10.0
    ) -> None:
        self.app = app
        self.body_limit = body_limit
        self.body_seconds = body_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        correlation_id = _correlation_id(scope)
        scope.setdefault("state", {})["correlation_id"] = correlation_id
        bind(correlation_id=correlation_id)
        # FastAPI's own server span (made when a tracer provider is installed) is current.
        tracing.annotate(correlation_id=correlation_id)
        await self._guarded(scope, receive, send, correlation_id)

    async def _guarded(
        self, scope: Scope, receive: Receive, send: Send, correlation_id: str
    ) -> None:
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            replay = await self._read_body(scope, receive, send)
            if replay is not None:
                await self.app(scope, replay, tracked_send)
        except Exception:
            log.exception("unhandled error in request %s", correlation_id)
            if started:
                raise
            detail = f"internal error; quote correlation id {correlation_id} to support"
            await problem(scope, 500, detail)(scope, receive, send)

    async def _read_body(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """A receive that replays the body, or None after answering 400/408/413."""
        limit = self.body_limit(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit() or len(declared) > 18:
                await problem(scope, 400, "Content-Length is not a byte count")(
                    scope, receive, send
                )
                return None
            if int(declared) > limit:
                await _too_large(scope, receive, send, limit)
                return None
        try:
            async with asyncio.timeout(self.body_seconds):
                chunks = await _body(receive, limit)
        except TimeoutError:
            detail = f"the request body did not arrive within {self.body_seconds:g} s"
            headers = {"Connection": "close"}  # what is still on its way is not read
            await problem(scope, 408, detail, kind="request-timeout", headers=headers)(
                scope, receive, send
            )
            return None
        if chunks is None:
            await _too_large(scope, receive, send, limit)
            return None
        pending: list[Message] = [{"type": "http.request", "body": b"".join(chunks)}]

        async def replay() -> Message:
            return pending.pop() if pending else await receive()

        return replay


async def _body(receive: Receive, limit: int) -> list[bytes] | None:
    """The body's chunks, or None once it is over `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return []
        size += len(message.get("body", b""))
        if size > limit:
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks


async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    detail = f"request body is over this endpoint's limit of {limit} bytes"
    await problem(scope, 413, detail, kind="body-too-large")(scope, receive, send)


def _correlation_id(scope: Scope) -> str:
    given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
    return given if HEADER_TEXT.fullmatch(given) else str(uuid4())
