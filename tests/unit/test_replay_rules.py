"""The per-stream verify rules, table-driven over hand-built stored events."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from coordinator.replay.records import StoredEvent, StreamRow
from coordinator.replay.rules import StreamCheck
from core.domain.events import (
    CancelRequested,
    Event,
    FullSyncQueued,
    SyncCancelled,
    SyncCompleted,
    SyncExpired,
    SyncFailed,
    SyncProgressed,
    SyncReused,
    SyncStarted,
    data_to_json,
)
from core.domain.hash_chain import GENESIS, chain_hash
from core.domain.upcasting import current_version
from core.domain.user_sync import fold

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=30)
STREAM = "UserSync-u1"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def started(task: str = "t1", minute: float = 0, replaces: str | None = None) -> SyncStarted:
    return SyncStarted(
        task,
        "full",
        at(minute),
        at(minute) + LEASE,
        replaces,
        reason="replaced_expired" if replaces else "first_click",
        requested_by=None,
    )


def reused(task: str = "t1", minute: float = 0) -> SyncReused:
    return SyncReused(task, "full", "incremental", at(minute), at(minute) + LEASE)


def progressed(task: str = "t1", minute: float = 5) -> SyncProgressed:
    return SyncProgressed(task, 40.0, {"m": 4}, at(minute) + LEASE)


def completed(task: str = "t1", minute: float = 10) -> SyncCompleted:
    return SyncCompleted(task, {"m": 9}, at(minute))


def failed(task: str = "t1", minute: float = 10) -> SyncFailed:
    return SyncFailed(task, "auth revoked", at(minute))


def expired(task: str = "t1", lease_end: float = 30, by: str = "start") -> SyncExpired:
    return SyncExpired(task, at(lease_end), detected_by=by)  # type: ignore[arg-type]


Step = tuple[float, Event]


def chained(steps: list[Step], versions: list[int] | None = None) -> list[StoredEvent]:
    """Stored rows with a valid hash chain, as the event store writes them."""
    rows: list[StoredEvent] = []
    previous = GENESIS
    for index, (minute, event) in enumerate(steps):
        version = versions[index] if versions else index + 1
        data = data_to_json(event)
        meta = {"user_id": "u1", "correlation_id": f"req-{index}", "causation_id": f"c-{index}"}
        event_id = f"00000000-0000-0000-0000-{index:012d}"
        digest = chain_hash(
            previous,
            event_id=event_id,
            stream_id=STREAM,
            version=version,
            event_type=event.event_type,
            schema_version=current_version(event.event_type),
            occurred_at=at(minute),
            data=data,
            metadata=meta,
        )
        rows.append(
            StoredEvent(
                event_id,
                STREAM,
                version,
                event.event_type,
                current_version(event.event_type),
                at(minute),
                data,
                meta,
                previous,
                digest,
            )
        )
        previous = digest
    return rows


def head(steps: list[Step], rows: list[StoredEvent]) -> StreamRow:
    """The stream row the write side keeps for these events."""
    state = fold(event for _, event in steps)
    live_until = state.lease_expires_at if state.status == "running" else None
    last = rows[-1] if rows else None
    return StreamRow(
        STREAM,
        "u1",
        last.version if last else 0,
        state.to_json(),
        last.hash if last else GENESIS,
        live_until,
    )


def findings(rows: list[StoredEvent], stream: StreamRow | None) -> set[tuple[str, int | None]]:
    check = StreamCheck(STREAM, stream)
    found = [v for row in rows for v in check.feed(row)] + check.finish()
    return {(v.rule, v.version) for v in found}


def incremental(task: str = "t1", minute: float = 0) -> SyncStarted:
    return SyncStarted(
        task, "incremental", at(minute), at(minute) + LEASE, reason="first_click", requested_by=None
    )


def queued_start(task: str = "t2", minute: float = 10, replaces: str | None = None) -> SyncStarted:
    start = at(minute)
    return SyncStarted(
        task, "full", start, start + LEASE, replaces, reason="queued_full_sync", requested_by=None
    )


def cancelled(task: str = "t1", minute: float = 3, dropped: bool = False) -> SyncCancelled:
    return SyncCancelled(task, at(minute), dropped)


QUEUE: dict[str, tuple[list[Step], set[tuple[str, int | None]]]] = {
    "queued full sync starts after completion": (
        [(0, incremental()), (1, FullSyncQueued("t1")), (10, completed()), (10, queued_start())],
        set(),
    ),
    "queued full sync starts after the reaper's expiry": (
        [
            (0, incremental()),
            (1, FullSyncQueued("t1")),
            (40, expired(by="reaper")),
            (40, queued_start(minute=40, replaces="t1")),
        ],
        set(),
    ),
    "queued full sync never started": (
        [(0, incremental()), (1, FullSyncQueued("t1")), (10, completed())],
        {("queued-full-sync-started", 3)},
    ),
    "queued full sync started without a queue": (
        [(0, incremental()), (10, completed()), (10, queued_start())],
        {("queued-full-sync-started", 3)},
    ),
    "full sync queued twice": (
        [(0, incremental()), (1, FullSyncQueued("t1")), (2, FullSyncQueued("t1"))],
        {("full-sync-queued-once", 3)},
    ),
    "full sync queued behind a full sync": (
        [(0, started()), (1, FullSyncQueued("t1"))],
        {("full-sync-queued-once", 2)},
    ),
    "cancel drops the queue": (
        [
            (0, incremental()),
            (1, FullSyncQueued("t1")),
            (3, CancelRequested("t1")),
            (3, cancelled(dropped=True)),
        ],
        set(),
    ),
    "cancelled without the request": (
        [(0, started()), (3, cancelled())],
        {("cancel-requested-first", 2)},
    ),
    "cancel requested, never ended": (
        [(0, started()), (3, CancelRequested("t1")), (5, progressed())],
        {("cancel-requested-first", 3)},
    ),
    "cancel of a finished task": (
        [(0, started()), (2, completed()), (3, CancelRequested("t1")), (3, cancelled())],
        {("names-open-task", 3), ("names-open-task", 4)},
    ),
}


LIFECYCLE: dict[str, tuple[list[Step], set[tuple[str, int | None]]]] = {
    "a whole life": (
        [
            (0, started()),
            (1, reused()),
            (5, progressed()),
            (6, reused(minute=0)),
            (10, completed()),
        ],
        set(),
    ),
    "restart after the lease ran out": (
        [(0, started()), (31, expired()), (31, started("t2", 31, "t1"))],
        set(),
    ),
    "expired by the reaper, then a new start": (
        [(0, started()), (40, expired(by="reaper")), (41, started("t2", 41))],
        set(),
    ),
    "second start while live": ([(0, started()), (1, started("t2", 1))], {("one-live-task", 2)}),
    "reuse of another task": ([(0, started()), (1, reused("t9"))], {("reuse-names-live-task", 2)}),
    "reuse after the lease": ([(0, started()), (31, reused())], {("reuse-names-live-task", 2)}),
    "reuse after completion": (
        [(0, started()), (10, completed()), (11, reused())],
        {("reuse-names-live-task", 3)},
    ),
    "progress before any start": ([(0, progressed())], {("names-open-task", 1)}),
    "progress of another task": ([(0, started()), (5, progressed("t9"))], {("names-open-task", 2)}),
    "progress after the lease": ([(0, started()), (31, progressed())], {("names-open-task", 2)}),
    "completion after failure": (
        [(0, started()), (10, failed()), (11, completed())],
        {("names-open-task", 3)},
    ),
    "expiry of a live task": ([(0, started()), (10, expired())], {("names-open-task", 2)}),
    "expiry naming the wrong lease end": (
        [(0, started()), (45, expired(lease_end=40))],
        {("names-open-task", 2)},
    ),
    "expiry of a finished task": (
        [(0, started()), (10, completed()), (45, expired())],
        {("names-open-task", 3)},
    ),
}


@pytest.mark.parametrize("case", sorted(LIFECYCLE | QUEUE))
def test_lifecycle_rules(case: str) -> None:
    steps, expected = (LIFECYCLE | QUEUE)[case]
    rows = chained(steps)
    assert findings(rows, head(steps, rows)) == expected


SIMPLE: list[Step] = [(0, started()), (1, reused()), (5, progressed())]
Tamper = Callable[[list[StoredEvent], StreamRow], tuple[list[StoredEvent], StreamRow | None]]


def edit(rows: list[StoredEvent], index: int, **changes: Any) -> list[StoredEvent]:
    return [row._replace(**changes) if i == index else row for i, row in enumerate(rows)]


STORAGE: dict[str, tuple[Tamper, set[tuple[str, int | None]]]] = {
    "untouched": (lambda rows, s: (rows, s), set()),
    "edited data": (
        lambda rows, s: (edit(rows, 1, data={**rows[1].data, "requested_sync_type": "full"}), s),
        {("hash-chain", 2)},
    ),
    "edited metadata": (
        lambda rows, s: (edit(rows, 0, metadata={**rows[0].metadata, "user_id": "x"}), s),
        {("hash-chain", 1)},
    ),
    "middle event deleted": (
        lambda rows, s: ([rows[0], rows[2]], s),
        {("hash-chain", 3), ("versions-contiguous", 3), ("snapshot-equals-fold", 3)},
    ),
    "first event deleted": (
        lambda rows, s: (rows[1:], s),
        {
            ("hash-chain", 2),
            ("versions-contiguous", 2),
            ("reuse-names-live-task", 2),
            ("names-open-task", 3),
            ("snapshot-equals-fold", 3),
        },
    ),
    "last event deleted": (
        lambda rows, s: (rows[:2], s),
        {("chain-head", 2), ("stream-version", 3), ("snapshot-equals-fold", 3)},
    ),
    "head rewritten": (lambda rows, s: (rows, s._replace(last_hash="f" * 64)), {("chain-head", 3)}),
    "version repeated": (
        lambda rows, s: (edit(rows, 2, version=2), s._replace(version=2)),
        {("versions-contiguous", 2), ("hash-chain", 2)},
    ),
    "snapshot edited": (
        lambda rows, s: (rows, s._replace(state={**s.state, "percent": 99.0})),
        {("snapshot-equals-fold", 3)},
    ),
    "snapshot unreadable": (
        lambda rows, s: (rows, s._replace(state={"colour": "blue"})),
        {("snapshot-equals-fold", 3)},
    ),
    "live_until lost": (
        lambda rows, s: (rows, s._replace(live_until=None)),
        {("snapshot-equals-fold", 3)},
    ),
    "stream row behind": (lambda rows, s: (rows, s._replace(version=2)), {("stream-version", 3)}),
    "no stream row": (lambda rows, s: (rows, None), {("stream-version", 3)}),
    "unknown event type": (
        lambda rows, s: (edit(rows, 1, event_type="SyncTeleported"), s),
        {("undecodable-event", 2), ("hash-chain", 2), ("snapshot-equals-fold", 3)},
    ),
}


@pytest.mark.parametrize("case", sorted(STORAGE))
def test_storage_rules(case: str) -> None:
    rows = chained(SIMPLE)
    tamper, expected = STORAGE[case]
    tampered, stream = tamper(rows, head(SIMPLE, rows))
    assert findings(tampered, stream) == expected


def test_gap_is_named_at_the_version_after_it() -> None:
    steps: list[Step] = [(0, started()), (1, reused()), (2, reused())]
    rows = chained(steps, versions=[1, 2, 5])
    check = StreamCheck(STREAM, head(steps, rows))
    found = [v for row in rows for v in check.feed(row)] + check.finish()
    assert [(v.rule, v.version, v.detail) for v in found] == [
        ("versions-contiguous", 5, "versions 3..4 are missing")
    ]


def test_only_the_first_broken_link_is_reported() -> None:
    rows = chained(SIMPLE)
    rows = [row._replace(hash="0" * 64) for row in rows]
    check = StreamCheck(STREAM, head(SIMPLE, rows))
    found = [v for row in rows for v in check.feed(row)]
    assert [(v.rule, v.version) for v in found] == [("hash-chain", 1)]
    assert "the event was edited" in found[0].detail


def test_an_empty_stream_row_is_clean_and_a_nonempty_one_is_not() -> None:
    empty = StreamRow(STREAM, "u1", 0, {}, GENESIS, None)
    assert StreamCheck(STREAM, empty).finish() == []
    stale = empty._replace(version=2)
    assert [(v.rule, v.version) for v in StreamCheck(STREAM, stale).finish()] == [
        ("stream-version", 2)
    ]
