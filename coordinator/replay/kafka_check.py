"""The topic against the store: every event present, per-user order kept, nothing foreign."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from coordinator.replay.records import (
    DeadLetterEntry,
    StoredEvent,
    TopicRecord,
    Violation,
    dead_letter_violation,
)

MISSING = "kafka-missing"
ORDER = "kafka-order"
FOREIGN = "kafka-foreign"
MISMATCH = "kafka-mismatch"
DEAD_LETTER = "dead-letter"


@dataclass(frozen=True)
class Published:
    """A topic record read as an envelope, or the reason it cannot be."""

    where: str
    stream_id: str
    event_id: str | None = None
    body: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def parse_record(record: TopicRecord) -> Published:
    """The envelope a record carries; a record that is not one says why."""
    where = f"partition {record.partition} offset {record.offset}"
    fallback = f"UserSync-{record.key}" if record.key else "-"
    try:
        body = json.loads(record.value)
    except (ValueError, UnicodeDecodeError) as error:
        return Published(where, fallback, error=f"not JSON ({error})")
    if not isinstance(body, dict):
        return Published(where, fallback, error="not a JSON object")
    stream_id = str(body.get("stream_id") or fallback)
    event_id = body.get("event_id")
    try:
        UUID(str(event_id))
    except ValueError:
        return Published(where, stream_id, body=body, error=f"event_id {event_id!r} is not a UUID")
    return Published(where, stream_id, str(event_id), body)


def _same_time(published: Any, stored: datetime) -> bool:
    try:
        return datetime.fromisoformat(str(published)) == stored
    except ValueError:
        return False


def mismatch(body: Mapping[str, Any], stored: StoredEvent) -> str | None:
    """Which fields of a published envelope differ from the stored event, if any."""
    meta = stored.metadata
    expected = {
        "stream_id": stored.stream_id,
        "version": stored.version,
        "event_type": stored.event_type,
        "schema_version": stored.schema_version,
        "user_id": meta.get("user_id"),
        "correlation_id": meta.get("correlation_id"),
        "causation_id": meta.get("causation_id"),
        "traceparent": meta.get("traceparent"),
        "data": stored.data,
    }
    differing = [name for name, value in expected.items() if body.get(name) != value]
    if not _same_time(body.get("occurred_at"), stored.occurred_at):
        differing.append("occurred_at")
    return ", ".join(differing) or None


@dataclass
class _Seen:
    """One stream on the topic: versions 1..prefix first seen in order, others seen early."""

    prefix: int = 0
    early: set[int] = field(default_factory=set)


class TopicCheck:
    """Memory: two numbers per stream, plus versions that arrived ahead of a gap."""

    def __init__(self) -> None:
        self._seen: dict[str, _Seen] = {}

    def check(self, record: Published, stored: StoredEvent | None) -> list[Violation]:
        """Violations a record shows on its own and in the order of its stream."""
        if record.error is not None:
            detail = f"{record.where} cannot be read as an event: {record.error}"
            return [Violation(FOREIGN, record.stream_id, _version(record.body), detail)]
        if stored is None:
            detail = (
                f"{record.where} carries event {record.event_id} "
                f"({record.body.get('event_type')}), which the store does not hold"
            )
            return [Violation(FOREIGN, record.stream_id, _version(record.body), detail)]
        found: list[Violation] = []
        differing = mismatch(record.body, stored)
        if differing:
            detail = f"{record.where} differs from the stored event in {differing}"
            found.append(Violation(MISMATCH, stored.stream_id, stored.version, detail))
        found.extend(self._order(stored, record.where))
        return found

    def _order(self, stored: StoredEvent, where: str) -> list[Violation]:
        seen = self._seen.setdefault(stored.stream_id, _Seen())
        version = stored.version
        if version <= seen.prefix or version in seen.early:
            return []  # a redelivery: at-least-once allows it
        if version != seen.prefix + 1:
            seen.early.add(version)
            return []
        found: list[Violation] = []
        if seen.early:
            detail = f"first appears at {where}, after version {min(seen.early)}"
            found.append(Violation(ORDER, stored.stream_id, version, detail))
        seen.prefix = version
        while seen.prefix + 1 in seen.early:
            seen.early.discard(seen.prefix + 1)
            seen.prefix += 1
        return found

    def finish(
        self,
        streams: Iterable[tuple[str, int]],
        pending: Mapping[str, set[int]],
        dead: Mapping[str, dict[int, DeadLetterEntry]] | None = None,
    ) -> Iterator[Violation]:
        """Stored events the topic never carried; events still in the outbox are not due yet.

        A dead letter is absent for a known reason and is reported as one, not as missing.
        """
        for stream_id, version in streams:
            seen = self._seen.pop(stream_id, None) or _Seen()
            waiting = pending.get(stream_id, set())
            refused = (dead or {}).get(stream_id, {})
            absent = [
                v
                for v in range(seen.prefix + 1, version + 1)
                if v not in seen.early and v not in waiting
            ]
            yield from (
                dead_letter_violation(DEAD_LETTER, refused[v]) for v in absent if v in refused
            )
            yield from _ranges(stream_id, (v for v in absent if v not in refused))


def _version(body: Mapping[str, Any]) -> int | None:
    version = body.get("version")
    return version if isinstance(version, int) else None


def _ranges(stream_id: str, versions: Iterable[int]) -> Iterator[Violation]:
    """Consecutive missing versions as one violation each run."""
    run: list[int] = []
    for version in versions:
        if run and version != run[-1] + 1:
            yield _missing(stream_id, run)
            run = []
        run = [run[0], version] if run else [version]
    if run:
        yield _missing(stream_id, run)


def _missing(stream_id: str, run: Sequence[int]) -> Violation:
    first, last = run[0], run[-1]
    if first == last:
        return Violation(MISSING, stream_id, first, f"version {first} is not on the topic")
    detail = f"versions {first}..{last} ({last - first + 1} events) are not on the topic"
    return Violation(MISSING, stream_id, first, detail)
