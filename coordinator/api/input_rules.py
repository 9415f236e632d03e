"""Bounds on what clients send: free-form JSON, text, ids and cursors.

Each rule is also written as JSON Schema, so the OpenAPI document states the same limits
the code enforces.
"""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any

from pydantic import AfterValidator, Field, WithJsonSchema

MAX_JSON_DEPTH = 4  # the stats object itself is level 1
MAX_JSON_ITEMS = 100  # members of an object, items of an array
MAX_KEY_LENGTH = 100
MAX_STRING_LENGTH = 1000
MAX_STATS_BYTES = 16 * 1024  # with the error text, keeps every event far below a Kafka record
MAX_ERROR_LENGTH = 4000
TASK_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
NO_NUL_PATTERN = "^[^\\u0000]*$"


def clean_text(value: str) -> str:
    """Text PostgreSQL and UTF-8 can hold: no NUL, no lone surrogate."""
    if "\x00" in value:
        raise ValueError("text must not contain NUL characters")
    if any("\ud800" <= char <= "\udfff" for char in value):
        raise ValueError("text must not contain unpaired surrogates")
    return value


def check_stats(value: dict[str, Any]) -> dict[str, Any]:
    """A bounded JSON object: depth, members, key and string lengths, finite numbers, size."""
    _check_value(value, depth=1, path="stats")
    size = len(json.dumps(value, ensure_ascii=False).encode())
    if size > MAX_STATS_BYTES:
        raise ValueError(f"stats is {size} bytes as JSON; the limit is {MAX_STATS_BYTES}")
    return value


def _check_value(value: Any, depth: int, path: str) -> None:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, str):
        if len(value) > MAX_STRING_LENGTH:
            raise ValueError(f"{path}: strings are limited to {MAX_STRING_LENGTH} characters")
        clean_text(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path}: numbers must be finite")
    elif isinstance(value, int):
        return
    elif isinstance(value, dict | list):
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"{path}: nested deeper than {MAX_JSON_DEPTH} levels")
        if len(value) > MAX_JSON_ITEMS:
            raise ValueError(f"{path}: more than {MAX_JSON_ITEMS} members")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(key, str):
                if len(key) > MAX_KEY_LENGTH:
                    raise ValueError(f"{path}: keys are limited to {MAX_KEY_LENGTH} characters")
                clean_text(key)
            _check_value(item, depth + 1, f"{path}.{str(key)[:20]}")
    else:
        raise ValueError(f"{path}: not a JSON value")


def _json_schema(depth: int) -> dict[str, Any]:
    """JSON Schema of a value nested at `depth`; containers only while depth allows."""
    text = {"type": "string", "maxLength": MAX_STRING_LENGTH, "pattern": NO_NUL_PATTERN}
    choices: list[dict[str, Any]] = [text, {"type": "number"}, {"type": "boolean"}]
    choices.append({"type": "null"})
    if depth <= MAX_JSON_DEPTH:
        items = _json_schema(depth + 1)
        choices.append(_object_schema(depth))
        choices.append({"type": "array", "maxItems": MAX_JSON_ITEMS, "items": items})
    return {"anyOf": choices}


def _object_schema(depth: int) -> dict[str, Any]:
    """An object at `depth`; its members are one level deeper."""
    return {
        "type": "object",
        "maxProperties": MAX_JSON_ITEMS,
        "propertyNames": {"maxLength": MAX_KEY_LENGTH, "pattern": NO_NUL_PATTERN},
        "additionalProperties": _json_schema(depth + 1),
    }


Stats = Annotated[
    dict[str, Any],
    AfterValidator(check_stats),
    WithJsonSchema(
        {
            **_object_schema(1),
            "description": f"Free-form counters; depth {MAX_JSON_DEPTH}, "
            f"{MAX_STATS_BYTES} bytes as JSON at most",
        }
    ),
]
ErrorText = Annotated[
    str,
    Field(min_length=1, max_length=MAX_ERROR_LENGTH),
    AfterValidator(clean_text),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_ERROR_LENGTH,
            "pattern": NO_NUL_PATTERN,
        }
    ),
]
Percent = Annotated[
    float,
    Field(strict=True, ge=0, le=100, allow_inf_nan=False, description="0 to 100; no booleans"),
]


MAX_CLIENT_LENGTH = 200
# The one rule for the header values a client chooses (X-Request-ID, Idempotency-Key):
# printable ASCII without spaces, 1-200 characters; routes declare it, middleware checks it.
MAX_HEADER_TEXT = 200
HEADER_PATTERN = rf"^[!-~]{{1,{MAX_HEADER_TEXT}}}$"
HEADER_TEXT = re.compile(HEADER_PATTERN)
UNPRINTABLE = re.compile(r"[^ -~]")


def client_name(user_agent: str | None) -> str | None:
    """The client recorded with a start: the User-Agent in printable ASCII, clipped.

    Kept, not refused: a browser's User-Agent is not the caller's to choose, so an odd one must
    not fail a click; what is recorded stays bounded and printable.
    """
    if not user_agent:
        return None
    return UNPRINTABLE.sub("?", user_agent[:MAX_CLIENT_LENGTH])
