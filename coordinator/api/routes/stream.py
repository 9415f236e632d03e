"""GET /sync/status/stream: the caller's status row as Server-Sent Events, each time it changes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from coordinator.api.auth.tokens import expiry_of
from coordinator.api.deps import Credentials, SettingsDep, UserId, WiringDep
from coordinator.api.problems.documents import problem
from coordinator.api.problems.openapi import AUTHENTICATED, RETRY_AFTER, problem_responses
from coordinator.api.schemas import StatusResponse
from coordinator.api.status_hub import HubClosed, StatusHub, Subscription, TooManyStreams

router = APIRouter(prefix="/sync", tags=["status"])
RECONNECT_MS = 1000  # the `retry:` an EventSource-style client waits before reconnecting
# OpenAPI 3.1 has `schema` describe one event of a text/event-stream.
STATUS_EVENT = {
    "type": "object",
    "required": ["event", "id", "data"],
    "properties": {
        "event": {"const": "status"},
        "id": {"type": "string", "pattern": "^[0-9]+$", "description": "The row's version"},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {"$ref": "#/components/schemas/StatusResponse"},
        },
        "retry": {"type": "integer", "minimum": 0},
    },
}
EVENT_STREAM = {
    "description": "`text/event-stream`: an `event: status` per change of the caller's "
    "status row (`id:` = its version, `data:` = the StatusResponse JSON) and `:` comment "
    "heartbeats. Without Last-Event-ID the current row comes first.",
    "content": {"text/event-stream": {"schema": STATUS_EVENT}},
}
TOO_MANY = {
    "description": "The caller has SYNC_STREAM_MAX_PER_USER streams open on this process",
    "headers": {"Retry-After": RETRY_AFTER},
}


def _responses() -> dict[int | str, dict[str, Any]]:
    answers = problem_responses(*AUTHENTICATED, 429)
    answers[429] = {**answers[429], **TOO_MANY}
    return {200: EVENT_STREAM, **answers}


@router.get("/status/stream", response_class=StreamingResponse, responses=_responses())
async def status_stream(
    request: Request,
    user_id: UserId,
    credentials: Credentials,
    wiring: WiringDep,
    settings: SettingsDep,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            max_length=18,
            pattern=r"^[0-9]+$",
            description="The last `id:` received: only rows of a newer version are sent",
        ),
    ] = None,
) -> Response:
    """Live status of the caller: one event per committed change, resumable by version."""
    hub: StatusHub = request.app.state.status_hub
    try:
        # Subscribed before the first read: a change committed in between is not missed.
        after = int(last_event_id) if last_event_id is not None else -1
        subscription = hub.subscribe(user_id, after)
    except TooManyStreams as error:
        headers = {"Retry-After": str(settings.retry_after_seconds)}
        return problem(
            request.scope,
            429,
            str(error),
            kind="too-many-streams",
            headers=headers,
            reason="too_many_streams",
        )
    except HubClosed:
        headers = {"Retry-After": str(settings.retry_after_seconds)}
        return problem(
            request.scope, 503, "the API is stopping", kind="unavailable", headers=headers
        )
    try:
        row = await run_in_threadpool(wiring.read_models.status, user_id)
    except Exception:
        hub.unsubscribe(subscription)
        raise
    subscription.offer(row or {"user_id": user_id, "last_version": 0})
    # The token was checked once, here: the stream ends when it expires, and the client
    # reconnects with a fresh one (or gets its 401 if it was revoked).
    until = expiry_of(credentials.credentials) if credentials else time.time()
    events = _events(subscription, settings.stream_heartbeat_seconds, until)
    return EventStream(events, on_close=lambda: hub.unsubscribe(subscription))


class EventStream(StreamingResponse):
    """A text/event-stream that gives its subscription back however it ends, even when the
    client leaves before the first byte (when the generator never ran)."""

    def __init__(self, content: AsyncIterator[str], on_close: Callable[[], None]) -> None:
        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        super().__init__(content, media_type="text/event-stream", headers=headers)
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


async def _events(
    subscription: Subscription, heartbeat_seconds: float, until: float
) -> AsyncIterator[str]:
    """The stream's text until the client leaves (the task is cancelled), the API stops, or
    the token it was opened with expires (`until`, epoch seconds)."""
    yield f"retry: {RECONNECT_MS}\n\n"
    while (left := until - time.time()) > 0:
        try:
            row = await subscription.next_row(min(heartbeat_seconds, left))
        except HubClosed:
            return
        yield ": heartbeat\n\n" if row is None else _event(row)


def _event(row: dict[str, Any]) -> str:
    fields = {k: v for k, v in row.items() if k != "last_version"}
    version = int(row["last_version"])
    body = StatusResponse(**fields, version=version).model_dump_json()
    return f"id: {version}\nevent: status\ndata: {body}\n\n"
