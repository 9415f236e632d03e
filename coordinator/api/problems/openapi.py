"""The OpenAPI document tells the truth: every error is problem+json, with its headers."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from coordinator.api.problems.documents import PROBLEM_MEDIA_TYPE, Problem

DESCRIPTIONS = {
    400: "Malformed request: body not UTF-8 JSON, or a bad Content-Length",
    401: "Missing, expired or invalid bearer token; see WWW-Authenticate and `reason`",
    403: "Token lacks the required scope",
    404: "No such resource for this user",
    408: "The request line, headers or body did not arrive in time; the connection is closed",
    409: "Conflict: version conflicts outlasted the retries, or the task is fenced",
    410: "Gone: the changes after this cursor are past the retention window",
    413: "Request body over this endpoint's limit, or the event it would record too large",
    422: "Invalid parameters or body (see `errors`), or Idempotency-Key reuse",
    429: "Too many of this user's commands waiting; see Retry-After",
    431: "Too many header fields, or the request line and headers too large",
    500: "Unexpected error; quote `correlation_id` to support",
    502: "An upstream server (the OAuth2 provider) could not be reached or failed",
    503: "Database or identity provider unavailable, or the user's state busy; see Retry-After",
}
RETRY_AFTER = {
    "description": "Seconds to wait before retrying",
    "schema": {"type": "integer", "minimum": 0},
}
CHALLENGE = {
    "description": 'RFC 6750 challenge, e.g. Bearer error="invalid_token"',
    "schema": {"type": "string"},
}
HEADERS = {
    401: {"WWW-Authenticate": CHALLENGE},
    403: {"WWW-Authenticate": CHALLENGE},
    429: {"Retry-After": RETRY_AFTER},
    503: {"Retry-After": RETRY_AFTER},
}
ALWAYS = (400, 408, 413, 431, 500)  # the request guard or the server, on any operation
AUTHENTICATED = (*ALWAYS, 401, 422, 503)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: these statuses, each a Problem with its headers."""
    answers: dict[int | str, dict[str, Any]] = {}
    for status in sorted(set(statuses)):
        answer: dict[str, Any] = {"model": Problem, "description": DESCRIPTIONS[status]}
        if status in HEADERS:
            answer["headers"] = HEADERS[status]
        answers[status] = answer
    return answers


def install_openapi(app: FastAPI) -> None:
    """Generate once, then move error bodies to problem+json and drop FastAPI's 422 models."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            _to_problems(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _to_problems(document: dict[str, Any]) -> None:
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    for path in document.get("paths", {}).values():
        for operation in path.values():
            for status, answer in operation.get("responses", {}).items():
                if status.isdigit() and int(status) >= 400:
                    answer["content"] = {PROBLEM_MEDIA_TYPE: {"schema": problem_ref}}
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
