"""Keyset cursors: the sort key of a page's last row as opaque URL-safe text, and back.

A page ends with the key of its last row (a time, then what breaks ties); the next request
sends it back as `cursor`. Anything this API did not make is refused with a 422.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import HTTPException

CURSOR_PATTERN = r"^[A-Za-z0-9_=-]{1,600}$"  # base64url, as `encode` writes it
NOT_OURS = "cursor is not one this API returned"


def encode(at: datetime, *tie_breakers: str | int) -> str:
    """The cursor after a row sorted by `at`, then by `tie_breakers`."""
    return base64.urlsafe_b64encode(json.dumps([at.isoformat(), *tie_breakers]).encode()).decode()


def decode(cursor: str, *checks: Callable[[Any], bool]) -> tuple[datetime, tuple[Any, ...]]:
    """The time (with its time zone) and the tie breakers a cursor carries, each passing its
    check; HTTPException 422 for anything else."""
    try:
        at, *rest = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        when = datetime.fromisoformat(at)
        valid = (
            when.tzinfo is not None
            and len(rest) == len(checks)
            and all(check(value) for check, value in zip(checks, rest, strict=True))
        )
    except (ValueError, TypeError):
        valid = False
    if not valid:
        raise HTTPException(422, NOT_OURS)
    return when, tuple(rest)
