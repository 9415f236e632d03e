"""Tamper evidence: each event's hash covers its content and the previous event's hash."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64


def chain_hash(
    previous: str,
    *,
    event_id: str,
    stream_id: str,
    version: int,
    event_type: str,
    schema_version: int,
    occurred_at: datetime,
    data: dict[str, Any],
    metadata: dict[str, Any],
) -> str:
    """SHA-256 over the previous hash and a canonical JSON of the stored event."""
    content = {
        "event_id": str(event_id),
        "stream_id": stream_id,
        "version": version,
        "event_type": event_type,
        "schema_version": schema_version,
        # Times are hashed in UTC so the session's time zone cannot change the hash.
        "occurred_at": occurred_at.astimezone(UTC).isoformat(),
        "data": data,
        "metadata": metadata,
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{previous}:{canonical}".encode()).hexdigest()
