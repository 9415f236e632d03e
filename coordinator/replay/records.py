"""What the replay tool reads: stored events and stream rows as plain values, and violations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

from core.domain.events import (
    EVENT_TYPES,
    Envelope,
    Event,
    data_from_json,
    envelope_from_stored,
)


class StoredEvent(NamedTuple):
    """One row of `events`, as the history reader streams it (a tuple: cheap per row)."""

    event_id: str
    stream_id: str
    version: int
    event_type: str
    schema_version: int
    occurred_at: datetime
    data: dict[str, Any]
    metadata: dict[str, Any]
    prev_hash: str
    hash: str


class StreamRow(NamedTuple):
    """One row of `streams`: the head the write side keeps beside the events."""

    stream_id: str
    user_id: str
    version: int
    state: dict[str, Any]
    last_hash: str
    live_until: datetime | None


class OutboxEntry(NamedTuple):
    """An outbox row waiting longer than the threshold."""

    event_id: str
    stream_id: str
    version: int | None
    age_seconds: float


class DeadLetterEntry(Protocol):
    """An event the broker refused for good: stored, but not on the topic."""

    @property
    def event_id(self) -> str: ...
    @property
    def stream_id(self) -> str: ...
    @property
    def version(self) -> int | None: ...
    @property
    def event_type(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def dead_at(self) -> datetime: ...


def dead_letter_violation(rule: str, entry: DeadLetterEntry) -> Violation:
    """A dead letter as a finding: which event, since when, why, and how to repair it."""
    return Violation(
        rule,
        entry.stream_id,
        entry.version,
        f"event {entry.event_id} ({entry.event_type}) was refused by the broker for good at "
        f"{show_time(entry.dead_at)}: {entry.reason}; after the fix: syncctl deadletters "
        f"republish --event-id {entry.event_id}",
    )


class TopicRecord(NamedTuple):
    """One record read back from the topic, undecoded."""

    partition: int
    offset: int
    key: str | None
    value: bytes


@dataclass(frozen=True)
class Violation:
    """A broken rule, named by rule, stream and version (None: not about one version)."""

    rule: str
    stream_id: str
    version: int | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        """The violation as JSON-ready values."""
        return {
            "rule": self.rule,
            "stream_id": self.stream_id,
            "version": self.version,
            "detail": self.detail,
        }


class UndecodableEvent(ValueError):
    """A stored event whose type or data the current code cannot read."""


def decode_event(stored: StoredEvent) -> Event:
    """The domain event inside a stored row, upcast, as every other reader decodes it."""
    if stored.event_type not in EVENT_TYPES:
        raise UndecodableEvent(f"unknown event type {stored.event_type!r}")
    try:
        return data_from_json(stored.event_type, stored.data, stored.schema_version)
    except (TypeError, ValueError, AttributeError, KeyError) as error:
        raise UndecodableEvent(f"{stored.event_type} data cannot be read: {error}") from error


def to_envelope(stored: StoredEvent, event: Event) -> Envelope:
    """The envelope the relay published for this row (KeyError if its metadata lacks ids)."""
    return envelope_from_stored(
        event_id=stored.event_id,
        event_type=stored.event_type,
        schema_version=stored.schema_version,
        stream_id=stored.stream_id,
        version=stored.version,
        occurred_at=stored.occurred_at,
        data=stored.data,
        metadata=stored.metadata,
        event=event,
    )


def show_time(moment: datetime | None) -> str:
    """A time as support staff read it: UTC, milliseconds, ISO 8601 with Z."""
    if moment is None:
        return "-"
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
