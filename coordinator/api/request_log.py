"""One log line per API request, and the caller's W3C trace context carried into its events.

The line (logger `coordinator.api.requests`, at INFO; `SYNC_REQUEST_LOG_LEVEL=WARNING` turns
it off) has the method, the route template (not the path: ids stay out of it), the status,
the duration, and the user, correlation and trace ids an operator searches by. With
`SYNC_LOG_FORMAT=json` they are keys of the line's JSON object.

A valid incoming `traceparent` is remembered for the request even with traces off, so the
commands the request submits (and so their events and Kafka headers) carry the caller's trace.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.telemetry import incoming_trace, tracing
from core.telemetry.logs import current_context
from core.telemetry.traceparent import trace_id_of

log = logging.getLogger("coordinator.api.requests")
ID_FIELDS = ("user_id", "correlation_id", "trace_id")


class RequestLog:
    """Logs each HTTP request once its response has been sent (or the request failed)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = incoming_trace.parse(_header(scope, b"traceparent"))
        incoming_trace.remember(given)
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before answering

        async def noting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, noting_send)
        finally:
            if log.isEnabledFor(logging.INFO):
                fields = request_fields(scope, status, time.perf_counter() - started, given)
                log.info(line_text(fields), extra={"fields": fields})


def request_fields(scope: Scope, status: int, seconds: float, given: str | None) -> dict[str, Any]:
    """What the line says about one request."""
    route = scope.get("route")
    fields: dict[str, Any] = {
        "method": scope["method"],
        "route": getattr(route, "path", None) or _known_path(scope),
        "status": status,
        "duration_ms": round(seconds * 1000, 2),
        "user_id": _user(scope) or current_context().get("user_id"),
        "correlation_id": scope.get("state", {}).get("correlation_id"),
        "trace_id": tracing.current_trace_id() or trace_id_of(given),
    }
    return {k: v for k, v in fields.items() if v is not None}


def line_text(fields: dict[str, Any]) -> str:
    """The line as text: `POST /sync/smart 202 3.1 ms user_id=... correlation_id=...`."""
    ids = " ".join(f"{k}={fields[k]}" for k in ID_FIELDS if k in fields)
    head = f"{fields['method']} {fields['route']} {fields['status']} {fields['duration_ms']} ms"
    return f"{head} {ids}".rstrip()


def _known_path(scope: Scope) -> str:
    """A request no route took (answered before the router, or 404): its path if it is one
    of the app's fixed paths, else a placeholder, so no id or probe string lands in logs."""
    path: str = scope["path"]
    openapi = getattr(scope.get("app"), "openapi", None)  # built once, then cached
    paths = openapi().get("paths", {}) if callable(openapi) else {}
    return path if path in paths else "(unrouted)"


def _user(scope: Scope) -> str | None:
    """Whose request it was, from its bearer token as the API verified it (cached), if any."""
    scheme, _, token = (_header(scope, b"authorization") or "").partition(" ")
    tokens = getattr(getattr(scope.get("app"), "state", None), "tokens", None)
    if scheme.lower() != "bearer" or not token or tokens is None:
        return None
    user: str | None = tokens.admission_user(token)
    return user


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None
