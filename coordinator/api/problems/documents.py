"""RFC 9457 problem details: the one shape of every 4xx and 5xx this service sends."""

from __future__ import annotations

import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse
from starlette.types import Scope

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "urn:sync-coordinator:problem:"
MAX_DETAIL = 1000
MAX_INSTANCE = 512


class FieldError(BaseModel):
    """One reason a request was invalid; the offending input is never echoed."""

    loc: list[str | int] = Field(description="Where: body, query, path or header, then names")
    msg: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details; members beyond the standard five are named below."""

    model_config = ConfigDict(extra="allow")

    type: str = Field("about:blank", description="URI naming the kind of problem")
    title: str = Field(description="Short summary of the kind of problem")
    status: int = Field(ge=400, le=599)
    detail: str = Field(description="What went wrong with this request, for a person")
    instance: str = Field(description="The request path this problem occurred on")
    correlation_id: str | None = Field(None, description="Quote it to support (X-Request-ID)")
    reason: str | None = Field(
        None, description="Machine-readable reason: token, fencing, how a task ended"
    )
    task_id: str | None = Field(None, description="The task a fenced report or a cancel named")
    errors: list[FieldError] | None = Field(None, description="Each invalid input, bounded")


class ProblemResponse(JSONResponse):
    """JSON that renders any text: lone surrogates are escaped, non-finite numbers refused."""

    media_type = PROBLEM_MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False).encode("ascii")


def clip(text: str, limit: int = MAX_DETAIL) -> str:
    """Bounded text, so no input can make an error document large."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def problem(
    scope: Scope,
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    headers: Mapping[str, str] | None = None,
    **members: Any,
) -> ProblemResponse:
    """A problem document for this request; `kind` names a specific problem type."""
    body: dict[str, Any] = {
        "type": f"{TYPE_BASE}{kind}" if kind else "about:blank",
        "title": HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error",
        "status": status,
        "detail": clip(detail),
        "instance": _instance(scope),
    }
    correlation_id = scope.get("state", {}).get("correlation_id")
    if correlation_id:
        body["correlation_id"] = correlation_id
    body.update({k: v for k, v in members.items() if v is not None})
    return ProblemResponse(body, status_code=status, headers=headers)


def _instance(scope: Scope) -> str:
    raw = scope.get("raw_path") or scope.get("path", "").encode()
    return clip(raw.decode("latin-1"), MAX_INSTANCE)
