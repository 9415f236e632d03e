"""The notice the projector sends when it commits status rows: which users' rows changed.

One owner of the format: the projector encodes it inside the transaction that writes
`sync_status` (PostgreSQL delivers it only if that transaction commits), and the API's
status stream decodes it. A payload is a JSON array of user ids, cut into pieces below
PostgreSQL's 8,000-byte NOTIFY limit; the rows themselves are read back by whoever cares.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

CHANNEL = "sync_status_changed"
MAX_PAYLOAD_BYTES = 7000  # PostgreSQL refuses payloads of 8,000 bytes or more


def encode(user_ids: Iterable[str]) -> list[str]:
    """Payloads naming every user once, each under MAX_PAYLOAD_BYTES."""
    payloads: list[bytes] = []
    piece: list[bytes] = []
    size = 2
    for user_id in user_ids:
        item = orjson.dumps(user_id)
        if piece and size + len(item) + 1 > MAX_PAYLOAD_BYTES:
            payloads.append(b"[" + b",".join(piece) + b"]")
            piece, size = [], 2
        piece.append(item)
        size += len(item) + 1
    if piece:
        payloads.append(b"[" + b",".join(piece) + b"]")
    return [p.decode() for p in payloads]


def decode(payload: str) -> list[str]:
    """The user ids of one payload; anything else (a foreign NOTIFY) names nobody."""
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, str)]
