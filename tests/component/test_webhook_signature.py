"""Webhook signatures: Standard Webhooks as its own library checks them; the deprecated
X-Sync-Signature format, and what verify() refuses."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from consumers.webhook_dispatcher import sign, verify
from consumers.webhook_signing import (
    BadSecret,
    parse_secrets,
    standard_headers,
    standard_signature,
)

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


# Standard Webhooks: checked against the `standardwebhooks` package, not our own code.
WHSEC = "whsec_" + base64.b64encode(b"k" * 32).decode()
ROTATED = "whsec_" + base64.b64encode(b"r" * 24).decode()


def test_each_secret_signs_and_the_standard_library_verifies_with_any_of_them() -> None:
    timestamp = str(int(time.time()))
    headers = standard_headers((WHSEC, ROTATED), "evt-1", timestamp, BODY)
    assert headers["webhook-id"] == "evt-1" and headers["webhook-timestamp"] == timestamp
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (WHSEC, ROTATED):
        assert Webhook(secret).verify(BODY, headers) == {"event_id": "e1"}
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + base64.b64encode(b"x" * 32).decode()).verify(BODY, headers)


def test_signature_matches_the_standard_library_byte_for_byte() -> None:
    moment = datetime.fromtimestamp(int(TIMESTAMP), UTC)
    expected = Webhook(WHSEC).sign("evt-1", moment, BODY.decode())
    assert standard_signature((WHSEC,), "evt-1", TIMESTAMP, BODY) == expected


def test_a_plain_secret_is_its_own_key_for_receivers_that_base64_it() -> None:
    timestamp = str(int(time.time()))
    headers = standard_headers(("plain-legacy-secret",), "evt-2", timestamp, BODY)
    receiver_secret = base64.b64encode(b"plain-legacy-secret").decode()
    assert Webhook(receiver_secret).verify(BODY, headers)


@pytest.mark.parametrize(
    ("value", "fault"),
    [
        ("whsec_not*base64", "secret 1 is not whsec_ followed by base64"),
        (f"{WHSEC} whsec_{base64.b64encode(b'short').decode()}", "secret 2 holds 5 bytes"),
    ],
)
def test_unusable_secrets_are_named(value: str, fault: str) -> None:
    with pytest.raises(BadSecret, match=fault):
        parse_secrets(value)
    assert parse_secrets(f"  {WHSEC}   {ROTATED} ") == (WHSEC, ROTATED)
