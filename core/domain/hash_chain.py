"""Tamper evidence: each event's hash covers its content and the previous event's hash."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.domain.events import Envelope, data_to_json, stored_metadata

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


@dataclass(frozen=True)
class ChainedEvent:
    """What the events table stores for an envelope beside its identity columns."""

    data: dict[str, Any]
    metadata: dict[str, Any]
    prev_hash: str
    hash: str


def chain_envelope(previous: str, envelope: Envelope) -> ChainedEvent:
    """The stored JSON of an envelope and its link in the stream's chain."""
    data, metadata = data_to_json(envelope.data), stored_metadata(envelope)
    digest = chain_hash(
        previous,
        event_id=envelope.event_id,
        stream_id=envelope.stream_id,
        version=envelope.version,
        event_type=envelope.event_type,
        schema_version=envelope.schema_version,
        occurred_at=envelope.occurred_at,
        data=data,
        metadata=metadata,
    )
    return ChainedEvent(data, metadata, previous, digest)
