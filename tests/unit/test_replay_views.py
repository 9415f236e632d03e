"""Rebuild's fold into shadow rows, the row diff, and promotion's catch-up, without a database."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from coordinator.replay import rebuild
from coordinator.replay.diff import describe_row
from coordinator.replay.rebuild import fold_into, fold_stream
from coordinator.replay.records import StoredEvent, decode_event, to_envelope
from coordinator.replay.swap import promote
from core.domain.events import (
    Event,
    SyncCompleted,
    SyncProgressed,
    SyncReused,
    SyncStarted,
    data_to_json,
)
from projections.status_view import StatusRow
from projections.task_history import TaskRow

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
LEASE_END = T0 + timedelta(minutes=30)


def stored(user: str, version: int, event: Event) -> StoredEvent:
    meta = {"user_id": user, "correlation_id": "req", "causation_id": "cmd"}
    return StoredEvent(
        f"{user}-{version}", f"UserSync-{user}", version, event.event_type, 1,
        T0 + timedelta(seconds=version), data_to_json(event), meta, "", "",
    )  # fmt: skip


def life(user: str) -> list[StoredEvent]:
    events: list[Event] = [
        SyncStarted(f"{user}-t1", "full", T0, LEASE_END, reason="first_click", requested_by=None),
        SyncReused(f"{user}-t1", "full", "incremental", T0, LEASE_END),
        SyncProgressed(f"{user}-t1", 50.0, {"m": 5}, LEASE_END),
        SyncCompleted(f"{user}-t1", {"m": 10}, T0),
        SyncStarted(
            f"{user}-t2", "incremental", T0, LEASE_END, reason="first_click", requested_by=None
        ),
    ]
    return [stored(user, v, e) for v, e in enumerate(events, start=1)]


class Sink:
    def __init__(self) -> None:
        self.batches: list[tuple[list[StatusRow], list[TaskRow]]] = []

    def write(self, statuses: Sequence[StatusRow], tasks: Sequence[TaskRow]) -> None:
        self.batches.append((list(statuses), list(tasks)))


def test_fold_stream_uses_the_projection_functions() -> None:
    status, tasks = fold_stream(to_envelope(e, decode_event(e)) for e in life("u1"))
    assert status is not None
    assert (status.task_id, status.status, status.last_version) == ("u1-t2", "running", 5)
    assert {(t.task_id, t.status, t.reuse_count, t.last_version) for t in tasks} == {
        ("u1-t1", "completed", 1, 4),
        ("u1-t2", "running", 0, 5),
    }
    assert fold_stream([]) == (None, [])


def test_fold_into_flushes_in_batches_and_skips_unreadable_events(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rebuild, "FLUSH_ROWS", 6)
    events = [e for user in ("a", "b", "c") for e in life(user)]
    events[1] = events[1]._replace(event_type="SyncTeleported")  # a's reuse
    sink = Sink()
    tally = fold_into(iter(events), sink)
    assert (tally.events, tally.undecodable, tally.statuses, tally.tasks) == (15, 1, 3, 6)
    assert [(len(s), len(t)) for s, t in sink.batches] == [(2, 4), (1, 2)]
    task_a = next(t for s, ts in sink.batches for t in ts if t.task_id == "a-t1")
    assert task_a.reuse_count == 0  # the unreadable reuse was not applied

    statuses_only = Sink()
    fold_into(iter(events), statuses_only, with_tasks=False)
    assert sum(len(t) for _, t in statuses_only.batches) == 0


class FakeSwap(Sink):
    def __init__(self, moved: list[tuple[str, str]], store: list[StoredEvent]) -> None:
        super().__init__()
        self._moved, self._store = moved, store
        self.forgotten: list[tuple[list[str], list[str]]] = []
        self.merged: list[str] = []

    def moved_streams(self) -> list[tuple[str, str]]:
        return self._moved

    def events_of(self, stream_ids: Sequence[str]) -> Iterator[StoredEvent]:
        return (e for e in self._store if e.stream_id in stream_ids)

    def forget(self, names: Sequence[str], user_ids: Sequence[str]) -> None:
        self.forgotten.append((list(names), list(user_ids)))

    def merge(self, name: str) -> tuple[int, int]:
        self.merged.append(name)
        return 1, 0


def test_promote_refolds_streams_that_moved_then_merges_the_promoted_views() -> None:
    store = life("a") + life("b")
    tx = FakeSwap([("UserSync-b", "b")], store)
    assert promote(tx, ["tasks"], ["status", "tasks"]) == {"tasks": (1, 0)}
    assert tx.forgotten == [(["status", "tasks"], ["b"])]
    [(statuses, tasks)] = tx.batches
    assert [s.user_id for s in statuses] == ["b"] and len(tasks) == 2
    assert tx.merged == ["tasks"]

    quiet = FakeSwap([], store)
    promote(quiet, ["status"], ["status"])
    assert (quiet.forgotten, quiet.batches, quiet.merged) == ([], [], ["status"])


@pytest.mark.parametrize(
    ("shadow", "live", "described"),
    [
        ({"k": 1}, None, "missing in live"),
        (None, {"k": 1}, "missing in shadow (the store has no event that makes it)"),
        (
            {"status": "completed", "last_version": 4},
            {"status": "running", "last_version": 4},
            "differs: status: shadow 'completed', live 'running'",
        ),
        (
            {"status": "completed", "last_version": 4},
            {"status": "running", "last_version": 3},
            "differs: status: shadow 'completed', live 'running'; last_version: shadow 4, "
            "live 3 (live is at version 3, the store at 4: projector lag, or a lost update)",
        ),
        (
            {"error_message": None, "last_version": 4},
            {"error_message": "x", "last_version": 6, "extra": 1},
            "differs: error_message: shadow null, live 'x'; last_version: shadow 4, live 6; "
            "extra: shadow null, live 1 (live is at version 6, past the rebuild's snapshot at 4)",
        ),
    ],
)
def test_describe_row(
    shadow: dict[str, object] | None, live: dict[str, object] | None, described: str
) -> None:
    assert describe_row("status", "u1", shadow, live).describe() == described
