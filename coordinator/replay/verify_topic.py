"""`verify --source kafka`: the topic, read from the beginning, against the event store."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import Protocol, TypeVar

from coordinator.replay.kafka_check import Published, TopicCheck, parse_record
from coordinator.replay.output import Tally
from coordinator.replay.progress import Progress
from coordinator.replay.records import DeadLetterEntry, StoredEvent, TopicRecord, Violation

T = TypeVar("T")
BATCH = 2000


class TopicHistory(Protocol):
    """Snapshot reads: what was stored, and what was not yet due on the topic."""

    def pending_outbox(self) -> Iterator[tuple[str, int]]: ...
    def dead_letters(self) -> Iterator[DeadLetterEntry]: ...
    def stream_versions(self) -> Iterator[tuple[str, int]]: ...


class EventsById(Protocol):
    """Lookups in the current store, for records newer than the snapshot."""

    def by_ids(self, event_ids: Sequence[str]) -> dict[str, StoredEvent]: ...


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of up to size items (itertools.batched arrives in Python 3.12)."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _stored(record: Published, found: dict[str, StoredEvent]) -> StoredEvent | None:
    return found.get(record.event_id) if record.event_id is not None else None


def verify_topic(
    history: TopicHistory,
    lookup: EventsById,
    records: Callable[[], Iterable[TopicRecord]],
    emit: Callable[[Violation], None],
    tally: Tally,
    *,
    progress: Progress | None = None,
) -> None:
    """Check the topic; records() is called only after the store's snapshot is taken."""
    # The snapshot starts with this first query, before the topic is read: an event stored
    # and already deleted from the outbox by then was acknowledged by the broker, so the
    # read that follows must find it. Pending ones are simply not due yet.
    pending: dict[str, set[int]] = {}
    for stream_id, version in history.pending_outbox():
        pending.setdefault(stream_id, set()).add(version)
    dead: dict[str, dict[int, DeadLetterEntry]] = {}
    for entry in history.dead_letters():
        if entry.version is not None:
            dead.setdefault(entry.stream_id, {})[entry.version] = entry
    check = TopicCheck()
    for chunk in batched(records(), BATCH):
        parsed = [parse_record(record) for record in chunk]
        # Looked up in the current store, not the snapshot: the relay may publish events
        # committed after it, and those are not foreign.
        found = lookup.by_ids([p.event_id for p in parsed if p.event_id is not None])
        for record in parsed:
            for violation in check.check(record, _stored(record, found)):
                emit(violation)
        tally.records += len(chunk)
        if progress is not None:
            progress.advance(len(chunk))
    if progress is not None:
        progress.finish()
    for violation in check.finish(_counted(history.stream_versions(), tally), pending, dead):
        emit(violation)


def _counted(streams: Iterable[tuple[str, int]], tally: Tally) -> Iterator[tuple[str, int]]:
    for stream_id, version in streams:
        tally.streams += 1
        tally.events += version
        yield stream_id, version
