"""`verify --source store`: every per-stream rule in one pass, then the whole-table checks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from coordinator.replay.output import Tally
from coordinator.replay.progress import Progress
from coordinator.replay.records import (
    DeadLetterEntry,
    OutboxEntry,
    StoredEvent,
    StreamRow,
    Violation,
    dead_letter_violation,
)
from coordinator.replay.rules import StreamCheck

UNIQUE_ID = "event-id-unique"
OUTBOX_AGE = "outbox-age"
DEAD_LETTER = "dead-letter"
TICK = 4096


class StoreHistory(Protocol):
    """The reads verify needs, all from one snapshot."""

    def expected_events(self) -> int: ...
    def streams_and_events(self) -> Iterator[StreamRow | StoredEvent]: ...
    def duplicate_event_ids(self) -> Iterator[tuple[str, list[tuple[str, int]]]]: ...
    def stale_outbox(self, max_age_seconds: float) -> Iterator[OutboxEntry]: ...
    def dead_letters(self) -> Iterator[DeadLetterEntry]: ...


def duplicate_violations(event_id: str, holders: list[tuple[str, int]]) -> list[Violation]:
    """One violation per copy of an event id after the first."""
    (first_stream, first_version), *others = holders
    return [
        Violation(
            UNIQUE_ID,
            stream_id,
            version,
            f"event id {event_id} is also stored as {first_stream} version {first_version}",
        )
        for stream_id, version in others
    ]


def outbox_violation(entry: OutboxEntry, max_age_seconds: float) -> Violation:
    """An outbox row waiting too long: the relay is down or stuck."""
    return Violation(
        OUTBOX_AGE,
        entry.stream_id,
        entry.version,
        f"event {entry.event_id} has waited {entry.age_seconds:,.0f}s in the outbox "
        f"(threshold {max_age_seconds:g}s): is the relay running?",
    )


def verify_store(
    history: StoreHistory,
    emit: Callable[[Violation], None],
    tally: Tally,
    *,
    outbox_max_age: float,
    progress: Progress | None = None,
) -> None:
    """Check the whole history; memory holds one stream's running state, never the history."""
    check: StreamCheck | None = None
    pending = 0
    for item in history.streams_and_events():
        if isinstance(item, StreamRow):
            if check is not None:
                _emit_all(check.finish(), emit)
            check = StreamCheck(item.stream_id, item)
            tally.streams += 1
            continue
        if check is None or item.stream_id != check.stream_id:
            # Events before any stream row of theirs: the row is missing.
            if check is not None:
                _emit_all(check.finish(), emit)
            check = StreamCheck(item.stream_id, None)
            tally.streams += 1
        for violation in check.feed(item):
            emit(violation)
        pending += 1
        if pending == TICK:
            tally.events += pending
            pending = 0
            if progress is not None:
                progress.advance(TICK)
    tally.events += pending
    if check is not None:
        _emit_all(check.finish(), emit)
    if progress is not None:
        progress.advance(pending)
        progress.finish()
    for event_id, holders in history.duplicate_event_ids():
        _emit_all(duplicate_violations(event_id, holders), emit)
    for entry in history.stale_outbox(outbox_max_age):
        emit(outbox_violation(entry, outbox_max_age))
    # Subscribers never received these: a violation until republished, like a stuck outbox.
    for dead in history.dead_letters():
        emit(dead_letter_violation(DEAD_LETTER, dead))


def _emit_all(violations: list[Violation], emit: Callable[[Violation], None]) -> None:
    for violation in violations:
        emit(violation)
