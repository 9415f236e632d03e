"""Map exceptions to problem documents (RFC 9457), each with a reason a person can act on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Match

from coordinator.api.auth import TokenRejected
from coordinator.api.jwks import KeysUnavailable
from coordinator.api.problems import clip, problem
from coordinator.domain.user_sync import TaskEnded, TaskFenced, TaskNotFound
from coordinator.service.handlers import IdempotencyKeyReused
from coordinator.service.ports import (
    ClientGone,
    ConflictRetriesExhausted,
    EventTooLarge,
    QueueFull,
    StoreBusy,
    StoreUnavailable,
)

MAX_LISTED_ERRORS = 20
Handler = Callable[[Request, Any], Awaitable[Response]]


def install_error_handlers(app: FastAPI, retry_after_seconds: int) -> None:
    """Register a problem-document handler for every error the service itself produces."""
    retry_after = {"Retry-After": str(retry_after_seconds)}

    async def http_error(request: Request, error: HTTPException) -> Response:
        headers = error.headers
        if error.status_code == 405:
            # Starlette names only the first route on the path; a path has one per method.
            headers = {**(headers or {}), "Allow": _allowed_methods(request)}
        return problem(request.scope, error.status_code, str(error.detail), headers=headers)

    async def invalid_request(request: Request, error: RequestValidationError) -> Response:
        errors = [_field_error(e) for e in error.errors()[:MAX_LISTED_ERRORS]]
        count = len(error.errors())
        detail = f"the request is invalid ({count} error{'s' if count > 1 else ''}): "
        detail += "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:3])
        return problem(request.scope, 422, detail, kind="invalid-request", errors=errors)

    async def token_rejected(request: Request, error: TokenRejected) -> Response:
        headers = {"WWW-Authenticate": error.challenge()}
        return problem(
            request.scope, error.status, error.detail, headers=headers, reason=error.reason
        )

    async def unavailable(request: Request, error: Exception) -> Response:
        if isinstance(error, StoreBusy):
            reason = "this user's sync state is busy; retry shortly"
        elif isinstance(error, KeysUnavailable):
            reason = "the identity provider's keys are unavailable; retry shortly"
        else:
            reason = "database unavailable; retry shortly"
        return problem(request.scope, 503, reason, kind="unavailable", headers=retry_after)

    async def queue_full(request: Request, error: QueueFull) -> Response:
        headers = {"Retry-After": str(error.retry_after)}
        return problem(request.scope, 429, str(error), kind="queue-full", headers=headers)

    async def too_large(request: Request, error: EventTooLarge) -> Response:
        return problem(request.scope, 413, str(error), kind="event-too-large")

    async def client_gone(request: Request, error: ClientGone) -> Response:
        # Nobody reads this answer; 499 (nginx's "client closed request") keeps logs honest.
        return problem(request.scope, 499, str(error), kind="client-gone")

    async def conflict(request: Request, error: ConflictRetriesExhausted) -> Response:
        return problem(request.scope, 409, str(error), kind="conflict")

    async def fenced(request: Request, error: TaskFenced) -> Response:
        return problem(
            request.scope,
            409,
            str(error),
            kind="task-fenced",
            task_id=error.task_id,
            reason=error.reason,
        )

    async def ended(request: Request, error: TaskEnded) -> Response:
        return problem(
            request.scope,
            409,
            str(error),
            kind="task-ended",
            task_id=error.task_id,
            reason=error.status,
        )

    async def not_found(request: Request, error: TaskNotFound) -> Response:
        return problem(request.scope, 404, str(error), kind="task-not-found")

    async def key_reused(request: Request, error: IdempotencyKeyReused) -> Response:
        return problem(request.scope, 422, str(error), kind="idempotency-key-reused")

    handlers: dict[type[Exception], Handler] = {
        HTTPException: http_error,
        RequestValidationError: invalid_request,
        TokenRejected: token_rejected,
        StoreUnavailable: unavailable,
        KeysUnavailable: unavailable,
        QueueFull: queue_full,
        EventTooLarge: too_large,
        ClientGone: client_gone,
        ConflictRetriesExhausted: conflict,
        TaskFenced: fenced,
        TaskEnded: ended,
        TaskNotFound: not_found,
        IdempotencyKeyReused: key_reused,
    }
    for kind, handler in handlers.items():
        app.add_exception_handler(kind, handler)


def _allowed_methods(request: Request) -> str:
    """Every method some route serves on this request's path."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


def _field_error(error: Any) -> dict[str, Any]:
    """Where and why, clipped; never the input, which may be huge or unprintable."""
    loc = [part if isinstance(part, int) else clip(str(part), 100) for part in error["loc"][:8]]
    return {"loc": loc, "msg": clip(str(error["msg"]), 300), "type": str(error["type"])}
