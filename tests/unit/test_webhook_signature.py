"""Webhook signatures: the documented format, and what verify() refuses."""

from __future__ import annotations

import pytest

from consumers.webhook_dispatcher import sign, verify

SECRET = "whsec_test"
TIMESTAMP = "1714550400"
BODY = b'{"event_id":"e1"}'
# From `printf '%s' '1714550400.{"event_id":"e1"}' | openssl dgst -sha256 -hmac whsec_test`,
# so the format receivers implement from docs/events.md is pinned independently.
EXPECTED = "sha256=c2a0a9ccee8bca910610d8b71034d15c90b934c77eca0b81352827c757aed767"
NOW = 1714550400 + 10


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    assert sign(SECRET, TIMESTAMP, BODY) == EXPECTED


def test_verify_accepts_the_signed_request() -> None:
    assert verify(SECRET, TIMESTAMP, BODY, EXPECTED, now=NOW)


@pytest.mark.parametrize(
    ("secret", "timestamp", "body", "signature", "now"),
    [
        ("other-secret", TIMESTAMP, BODY, EXPECTED, NOW),
        (SECRET, TIMESTAMP, b'{"event_id":"e2"}', EXPECTED, NOW),
        (SECRET, TIMESTAMP, BODY + b" ", EXPECTED, NOW),
        (SECRET, "1714550401", BODY, EXPECTED, NOW),
        (SECRET, TIMESTAMP, BODY, EXPECTED.removeprefix("sha256="), NOW),
        (SECRET, TIMESTAMP, BODY, EXPECTED, NOW + 3600),  # replayed an hour later
        (SECRET, TIMESTAMP, BODY, EXPECTED, NOW - 3600),  # from the future
        (SECRET, "not-a-time", BODY, sign(SECRET, "not-a-time", BODY), NOW),
    ],
    ids=[
        "wrong-secret",
        "other-body",
        "body-reformatted",
        "other-timestamp",
        "no-prefix",
        "too-old",
        "too-new",
        "non-numeric-timestamp",
    ],
)
def test_verify_refuses(secret: str, timestamp: str, body: bytes, signature: str, now: int) -> None:
    assert not verify(secret, timestamp, body, signature, now=now)


def test_tolerance_is_configurable() -> None:
    late = NOW + 3600
    assert verify(SECRET, TIMESTAMP, BODY, EXPECTED, now=late, tolerance_seconds=7200)
