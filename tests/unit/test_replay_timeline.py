"""The audit timeline: reasons in words and collapsed runs of reuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from coordinator.replay.records import StoredEvent, show_time
from coordinator.replay.timeline import Entry, collapse, entry, reason
from core.domain.events import (
    Event,
    SyncCompleted,
    SyncExpired,
    SyncFailed,
    SyncProgressed,
    SyncReused,
    SyncStarted,
    data_to_json,
)

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
LEASE_END = T0 + timedelta(minutes=30)


@pytest.mark.parametrize(
    ("event", "said"),
    [
        (
            SyncStarted("t1", "full", T0, LEASE_END, reason="first_click", requested_by=None),
            "started",
        ),
        (
            SyncStarted(
                "t2",
                "full",
                T0,
                LEASE_END,
                replaces_task_id="t1",
                reason="replaced_expired",
                requested_by=None,
            ),
            "started replacing task t1",
        ),
        (
            SyncReused("t1", "full", "incremental", T0, LEASE_END),
            "reused because task t1 is live until 2026-01-01T12:30:00.000Z",
        ),
        (
            SyncExpired("t1", LEASE_END, detected_by="reaper"),
            "expired because the lease ran out at 2026-01-01T12:30:00.000Z (detected by reaper)",
        ),
        (
            SyncExpired("t1", LEASE_END),
            "expired because the lease ran out at 2026-01-01T12:30:00.000Z (detected by start)",
        ),
        (
            SyncProgressed("t1", 42.5, {}, LEASE_END),
            "progress 42.5% renewed lease to 2026-01-01T12:30:00.000Z",
        ),
        (
            SyncProgressed("t1", 40.0, {}, LEASE_END),
            "progress 40% renewed lease to 2026-01-01T12:30:00.000Z",
        ),
        (SyncCompleted("t1", {}, LEASE_END), "completed"),
        (SyncFailed("t1", "auth revoked", LEASE_END), "failed: auth revoked"),
    ],
)
def test_reason(event: Event, said: str) -> None:
    assert reason(event) == said


def test_times_are_shown_in_utc_with_milliseconds() -> None:
    local = datetime(2026, 1, 1, 13, 0, 0, 123456, tzinfo=UTC).astimezone(
        timezone(timedelta(hours=1))
    )
    assert show_time(local) == "2026-01-01T13:00:00.123Z"
    assert show_time(None) == "-"


def stored(version: int, event: Event, correlation: str = "req") -> StoredEvent:
    meta = {"user_id": "u1", "correlation_id": f"{correlation}-{version}", "causation_id": "c"}
    return StoredEvent(
        f"e{version}", "UserSync-u1", version, event.event_type, 1,
        T0 + timedelta(seconds=version), data_to_json(event), meta, "", "",
    )  # fmt: skip


def reuse(task: str) -> Event:
    return SyncReused(task, "full", "full", T0, LEASE_END)


def entries(*events: Event) -> list[Entry]:
    return [entry(stored(v, e)) for v, e in enumerate(events, start=1)]


def shape(*events: Event) -> list[tuple[str, str, str]]:
    return [(line.versions, line.event, line.correlation_id) for line in collapse(entries(*events))]


def test_runs_of_reuses_collapse_into_one_line_with_a_count() -> None:
    start = SyncStarted("t1", "full", T0, LEASE_END, reason="first_click", requested_by=None)
    progress = SyncProgressed("t1", 10.0, {}, LEASE_END)
    assert shape(start, reuse("t1"), reuse("t1"), reuse("t1"), progress, reuse("t1")) == [
        ("1", "SyncStarted", "req-1"),
        ("2-4", "SyncReused x3", "req-2 +2"),
        ("5", "SyncProgressed", "req-5"),
        ("6", "SyncReused", "req-6"),
    ]


def test_a_run_breaks_where_the_task_changes_and_ends_the_timeline() -> None:
    assert shape(reuse("t1"), reuse("t1"), reuse("t2"), reuse("t2")) == [
        ("1-2", "SyncReused x2", "req-1 +1"),
        ("3-4", "SyncReused x2", "req-3 +1"),
    ]
    [line] = collapse(entries(reuse("t1"), reuse("t1")))
    assert line.reason.endswith(f"(last at {show_time(T0 + timedelta(seconds=2))})")
    assert list(collapse([])) == []


def test_an_unreadable_event_is_shown_not_fatal() -> None:
    row = stored(1, reuse("t1"))._replace(event_type="SyncTeleported")
    said = entry(row)
    assert said.reason == "cannot be read: unknown event type 'SyncTeleported'"
    assert said.to_json()["version"] == 1
