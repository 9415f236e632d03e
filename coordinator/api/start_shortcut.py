"""POST /sync/smart answered before the router: the same command and answer, less HTTP work.

A plain click (a valid bearer token, at most `force_full` in the query, well-formed headers)
builds the route's own command (`start_command`), submits it the same way and answers the
route's own schema (`start_response`); service errors map through the route's `problem_for`.
Anything else, and every click while tracing is on, goes on to the route. This sits inside
RequestGuard and UserGate, so the correlation id, body limit and per-user admission apply
to both ways alike. Why: docs/decisions/start-shortcut.md.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from pydantic import TypeAdapter, ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from coordinator.api.auth.tokens import TokenVerifier
from coordinator.api.input_rules import HEADER_TEXT
from coordinator.api.problems.handlers import problem_for
from coordinator.api.start_click import start_command, start_response
from coordinator.api.submission import submit
from core.domain.commands import StartRequested
from core.telemetry import tracing

START_PATH = "/sync/smart"
# The route's `force_full: bool` query parameter is read by pydantic: so is the shortcut's.
QUERY_BOOL = TypeAdapter(bool)
READ_HEADERS = (b"authorization", b"idempotency-key", b"x-request-id", b"user-agent")
JSON_HEADERS = [(b"content-type", b"application/json")]


class StartShortcut:
    """ASGI middleware: plain start clicks skip the router; see the module docstring."""

    def __init__(self, app: ASGIApp, tokens: TokenVerifier, retry_after_seconds: int) -> None:
        self.app, self._tokens, self._retry_after = app, tokens, retry_after_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        plain = (
            scope["type"] == "http"
            and scope["path"] == START_PATH
            and scope["method"] == "POST"
            and not tracing.enabled()
        )
        command = self._command(scope) if plain else None
        if command is None:
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        try:
            outcome = await submit(receive, state.wiring, state.metrics, "start", command)
        except Exception as error:
            answer = problem_for(scope, error, self._retry_after)
            if answer is None:
                raise
            await answer(scope, receive, send)
            return
        body = start_response(outcome).model_dump_json().encode()
        headers = [*JSON_HEADERS, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 202, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _command(self, scope: Scope) -> StartRequested | None:
        """The click's command, or None when the route must look at this request."""
        force_full = _force_full(scope["query_string"])
        headers: dict[bytes, str] = {}
        for name, value in scope["headers"]:
            if name in READ_HEADERS:
                if name in headers:
                    return None  # repeated: the route decides which one counts
                headers[name] = value.decode("latin-1")
        scheme, _, token = headers.get(b"authorization", "").partition(" ")
        key, request_id = headers.get(b"idempotency-key"), headers.get(b"x-request-id")
        if force_full is None or scheme.lower() != "bearer":
            return None
        if key is not None and not HEADER_TEXT.fullmatch(key):
            return None
        if request_id is not None and not HEADER_TEXT.fullmatch(request_id):
            return None
        user_id = self._tokens.user_at_once(token)
        if user_id is None:
            return None
        correlation_id: str = scope["state"]["correlation_id"]
        agent = headers.get(b"user-agent")
        return start_command(user_id, force_full, key, correlation_id, agent)


def _force_full(query: bytes) -> bool | None:
    """force_full from the query string (False when absent); None for anything else."""
    if not query:
        return False
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    if len(pairs) != 1 or pairs[0][0] != "force_full":
        return None
    try:
        return QUERY_BOOL.validate_python(pairs[0][1])
    except ValidationError:
        return None
