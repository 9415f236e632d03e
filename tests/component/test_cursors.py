"""The one cursor codec: a page's last key goes out and comes back; nothing else comes in."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import HTTPException

from coordinator.api import cursors

AT = datetime(2026, 1, 1, 9, 30, 15, 123456, tzinfo=UTC)


def is_text(value: object) -> bool:
    return isinstance(value, str) and value.isprintable()


def is_uid(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**32


@pytest.mark.parametrize(
    ("key", "checks"),
    [
        (("sync_" + "a" * 59,), (is_text,)),
        (("Ordner/Unterordner ü", 4_294_967_295), (is_text, is_uid)),
    ],
    ids=["task", "message"],
)
def test_a_key_goes_out_and_comes_back(
    key: tuple[str | int, ...], checks: tuple[Callable[[Any], bool], ...]
) -> None:
    cursor = cursors.encode(AT, *key)
    assert len(cursor) <= 200 or len(key) == 2
    assert cursors.decode(cursor, *checks) == (AT, key)


def b64(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "bm90LWpzb24=",  # not JSON
        "%%%",  # not base64
        b64(["2026-01-01T00:00:00", "a", 1]),  # no time zone
        b64(["yesterday", "a", 1]),
        b64(["2026-01-01T00:00:00+00:00", "a"]),  # a part missing
        b64(["2026-01-01T00:00:00+00:00", "a", 1, 2]),  # one too many
        b64(["2026-01-01T00:00:00+00:00", "a", 0]),  # fails its check
        b64(["2026-01-01T00:00:00+00:00", 7, 1]),
        b64({"at": "2026-01-01T00:00:00+00:00"}),
        b64([]),
    ],
)
def test_a_cursor_this_api_did_not_make_is_a_422(cursor: str) -> None:
    with pytest.raises(HTTPException) as refused:
        cursors.decode(cursor, is_text, is_uid)
    assert (refused.value.status_code, refused.value.detail) == (422, cursors.NOT_OURS)
