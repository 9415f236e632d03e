"""Webhook signatures: Standard Webhooks, and our own `X-Sync-Signature` while it is deprecated.

Standard Webhooks (https://www.standardwebhooks.com): `webhook-id` (the event id, the same on
every attempt), `webhook-timestamp` (Unix seconds, new on every attempt) and
`webhook-signature`: `v1,<base64 HMAC-SHA256>` over `{id}.{timestamp}.{body}`, one per
configured secret, space-separated, so a receiver keeps verifying while secrets rotate. A
`whsec_<base64>` secret's key is the decoded bytes; any other secret's key is its UTF-8
bytes (a receiver then uses `base64(secret)` with a Standard Webhooks library).

Deprecated until 2027-06-01: `X-Sync-Timestamp` and `X-Sync-Signature: sha256=<hex>` over
`{timestamp}.{body}` with the first secret as written, and `verify()` for receivers.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time

SECRET_PREFIX = "whsec_"
LEGACY_HEADERS_UNTIL = "2027-06-01"


class BadSecret(ValueError):
    """A configured secret cannot be used."""


def parse_secrets(value: str) -> tuple[str, ...]:
    """The space-separated secrets, first the current one; raises BadSecret naming the fault."""
    secrets = tuple(value.split())
    for number, secret in enumerate(secrets, start=1):
        if secret.startswith(SECRET_PREFIX):
            try:
                key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
            except binascii.Error as error:
                raise BadSecret(f"secret {number} is not whsec_ followed by base64") from error
            if len(key) < 24:
                raise BadSecret(f"secret {number} holds {len(key)} bytes; use 24 to 64")
    return secrets


def key_of(secret: str) -> bytes:
    """The HMAC key of a secret: whsec_ secrets are base64, others are used as written."""
    if secret.startswith(SECRET_PREFIX):
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    return secret.encode()


def standard_signature(secrets: tuple[str, ...], msg_id: str, timestamp: str, body: bytes) -> str:
    """`webhook-signature`: one `v1,<base64>` per secret, space-separated."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    signatures = (
        base64.b64encode(hmac.new(key_of(s), content, hashlib.sha256).digest()).decode()
        for s in secrets
    )
    return " ".join(f"v1,{signature}" for signature in signatures)


def standard_headers(
    secrets: tuple[str, ...], msg_id: str, timestamp: str, body: bytes
) -> dict[str, str]:
    """The three Standard Webhooks headers of one attempt."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": standard_signature(secrets, msg_id, timestamp, body),
    }


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Deprecated `sha256=<hex>`: HMAC-SHA256 with the secret as written over `{ts}.{body}`."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    now: float | None = None,
    tolerance_seconds: float = 300,
) -> bool:
    """Deprecated, for receivers of X-Sync-Signature: the body is signed and recent."""
    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except ValueError:
        return False
    # The timestamp is signed too, so a captured request cannot be replayed later.
    return age <= tolerance_seconds and hmac.compare_digest(
        sign(secret, timestamp, body), signature
    )
