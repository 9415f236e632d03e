"""Map exceptions to problem documents (RFC 9457), each with a reason a person can act on."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import Scope

from coordinator.api.auth.jwks import KeysUnavailable
from coordinator.api.auth.tokens import TokenRejected
from coordinator.api.problems.documents import clip, problem
from coordinator.service.handlers import IdempotencyKeyReused
from coordinator.service.ports import ClientGone, ConflictRetriesExhausted, EventTooLarge, QueueFull
from core.domain.user_sync import TaskEnded, TaskFenced, TaskNotFound
from core.store_errors import StoreBusy, StoreUnavailable

MAX_LISTED_ERRORS = 20


def install_error_handlers(app: FastAPI, retry_after_seconds: int) -> None:
    """Register a problem-document handler for every error the service itself produces."""

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

    async def service_error(request: Request, error: Exception) -> Response:
        answer = problem_for(request.scope, error, retry_after_seconds)
        assert answer is not None, f"no problem document for {type(error).__name__}"
        return answer

    app.add_exception_handler(HTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, invalid_request)  # type: ignore[arg-type]
    for kind in SERVICE_ERRORS:
        app.add_exception_handler(kind, service_error)


SERVICE_ERRORS: tuple[type[Exception], ...] = (
    TokenRejected,
    StoreUnavailable,
    KeysUnavailable,
    QueueFull,
    EventTooLarge,
    ClientGone,
    ConflictRetriesExhausted,
    TaskFenced,
    TaskEnded,
    TaskNotFound,
    IdempotencyKeyReused,
)


def problem_for(scope: Scope, error: Exception, retry_after_seconds: int) -> Response | None:
    """The problem document for an error the service produces; None for any other."""
    if isinstance(error, TokenRejected):
        headers = {"WWW-Authenticate": error.challenge()}
        return problem(scope, error.status, error.detail, headers=headers, reason=error.reason)
    if isinstance(error, StoreUnavailable | KeysUnavailable):
        if isinstance(error, StoreBusy):
            reason = "this user's sync state is busy; retry shortly"
        elif isinstance(error, KeysUnavailable):
            reason = "the identity provider's keys are unavailable; retry shortly"
        else:
            reason = "database unavailable; retry shortly"
        retry_after = {"Retry-After": str(retry_after_seconds)}
        return problem(scope, 503, reason, kind="unavailable", headers=retry_after)
    if isinstance(error, QueueFull):
        headers = {"Retry-After": str(error.retry_after)}
        return problem(scope, 429, str(error), kind="queue-full", headers=headers)
    if isinstance(error, EventTooLarge):
        return problem(scope, 413, str(error), kind="event-too-large")
    if isinstance(error, ClientGone):
        # Nobody reads this answer; 499 (nginx's "client closed request") keeps logs honest.
        return problem(scope, 499, str(error), kind="client-gone")
    if isinstance(error, ConflictRetriesExhausted):
        return problem(scope, 409, str(error), kind="conflict")
    if isinstance(error, TaskFenced):
        return problem(
            scope, 409, str(error), kind="task-fenced", task_id=error.task_id, reason=error.reason
        )
    if isinstance(error, TaskEnded):
        return problem(
            scope, 409, str(error), kind="task-ended", task_id=error.task_id, reason=error.status
        )
    if isinstance(error, TaskNotFound):
        return problem(scope, 404, str(error), kind="task-not-found")
    if isinstance(error, IdempotencyKeyReused):
        return problem(scope, 422, str(error), kind="idempotency-key-reused")
    return None


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
