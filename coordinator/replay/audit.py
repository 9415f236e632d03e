"""`audit`: one user's timeline from the event store, and the aggregate's state at a moment."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Protocol, TextIO

from coordinator.replay.records import StoredEvent, StreamRow, UndecodableEvent, decode_event
from coordinator.replay.timeline import (
    HEADER,
    collapse,
    entry,
    format_line,
    state_json,
    state_lines,
)
from core.domain.events import Event
from core.domain.user_sync import UserSyncState, fold


class AuditSource(Protocol):
    """The reads audit needs."""

    def find_stream(self, user_id: str) -> StreamRow | None: ...
    def stream_events(
        self, stream_id: str, since: datetime | None = None, until: datetime | None = None
    ) -> Iterator[StoredEvent]: ...


def state_at(source: AuditSource, stream_id: str, moment: datetime) -> tuple[UserSyncState, int]:
    """The fold of the events that occurred at or before moment, and the last version folded."""
    folded = [0]

    def events() -> Iterator[Event]:
        for stored in source.stream_events(stream_id, until=moment):
            try:
                event = decode_event(stored)
            except UndecodableEvent:
                continue  # verify names it; the state goes on without it
            folded[0] = stored.version
            yield event

    return fold(events()), folded[0]


def run_audit(
    source: AuditSource,
    user_id: str,
    *,
    since: datetime | None,
    until: datetime | None,
    as_of: datetime | None,
    fmt: str,
    out: TextIO,
    err: TextIO,
) -> int:
    """Print the timeline (and the state as of a moment); 1 for a user without history."""
    stream = source.find_stream(user_id)
    if stream is None or stream.version == 0:
        err.write(f"no history for user {user_id!r}: the event store has no events for them\n")
        return 1
    # "As of T" reads as "up to T" unless the caller says otherwise.
    until = until if until is not None or as_of is None else as_of
    entries = map(entry, source.stream_events(stream.stream_id, since, until))
    if fmt == "json":
        head = {"user_id": user_id, "stream_id": stream.stream_id}
        out.write(json.dumps(head)[:-1] + ', "events": [')
        written = 0
        for item in entries:
            out.write(("," if written else "") + "\n  " + json.dumps(item.to_json()))
            written += 1
        out.write("\n]" if written else "]")
        if as_of is not None:
            state, version = state_at(source, stream.stream_id, as_of)
            out.write(f', "as_of": {json.dumps(state_json(state, as_of, version))}')
        out.write("}\n")
        return 0
    out.write(format_line(HEADER) + "\n")
    shown = 0
    for line in collapse(entries):
        out.write(format_line(line) + "\n")
        shown += 1
    if not shown:
        out.write("(no events in this time range)\n")
    if as_of is not None:
        state, version = state_at(source, stream.stream_id, as_of)
        out.write("\n" + "\n".join(state_lines(state, as_of, version)) + "\n")
    return 0
