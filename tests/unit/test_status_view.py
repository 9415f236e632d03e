"""The status view's fold, table-driven with hand-built envelopes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from core.domain.events import (
    Envelope,
    Event,
    SyncCompleted,
    SyncExpired,
    SyncFailed,
    SyncProgressed,
    SyncReused,
    SyncStarted,
)
from projections.status_view import StatusRow, apply_status

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=30)


def envelope(version: int, event: Event, minutes: float = 0, user: str = "u1") -> Envelope:
    return Envelope(
        event_id=f"e{version}",
        event_type=event.event_type,
        schema_version=1,
        stream_id=f"UserSync-{user}",
        user_id=user,
        version=version,
        occurred_at=T0 + timedelta(minutes=minutes),
        correlation_id="req",
        causation_id="cmd",
        data=event,
    )


def started(task: str = "t1", sync_type: str = "full") -> SyncStarted:
    return SyncStarted(task, sync_type, T0, T0 + LEASE, reason="first_click", requested_by=None)  # type: ignore[arg-type]


RUNNING = StatusRow(
    user_id="u1",
    task_id="t1",
    is_syncing=True,
    status="running",
    sync_type="full",
    started_at=T0,
    updated_at=T0,
    lease_expires_at=T0 + LEASE,
    progress_percentage=40.0,
    current_stats={"messages": 40},
    last_version=3,
)
LATER = T0 + timedelta(minutes=5)
NEW_LEASE = LATER + LEASE

CASES = [
    # (name, row before, event, row after)
    (
        "first start makes a running row",
        None,
        started(),
        replace(RUNNING, progress_percentage=0.0, current_stats={}, updated_at=LATER),
    ),
    (
        "a new start resets progress, stats and error of the finished task",
        replace(RUNNING, status="failed", is_syncing=False, error_message="boom"),
        started("t2", "incremental"),
        StatusRow(
            user_id="u1",
            task_id="t2",
            is_syncing=True,
            status="running",
            sync_type="incremental",
            started_at=T0,
            updated_at=LATER,
            lease_expires_at=T0 + LEASE,
            last_version=4,
        ),
    ),
    (
        "reuse touches only the timestamp, version and lease",
        RUNNING,
        SyncReused("t1", "full", "incremental", T0, NEW_LEASE),
        replace(RUNNING, updated_at=LATER, lease_expires_at=NEW_LEASE, last_version=4),
    ),
    (
        "progress renews the lease",
        RUNNING,
        SyncProgressed("t1", 75.5, {"messages": 75}, NEW_LEASE),
        replace(
            RUNNING,
            progress_percentage=75.5,
            current_stats={"messages": 75},
            lease_expires_at=NEW_LEASE,
            updated_at=LATER,
            last_version=4,
        ),
    ),
    (
        "completion ends the sync at 100 percent",
        RUNNING,
        SyncCompleted("t1", {"messages": 120}, LATER),
        replace(
            RUNNING,
            is_syncing=False,
            status="completed",
            progress_percentage=100.0,
            current_stats={"messages": 120},
            updated_at=LATER,
            last_version=4,
        ),
    ),
    (
        "failure keeps the progress and records the error",
        RUNNING,
        SyncFailed("t1", "imap timeout", LATER),
        replace(
            RUNNING,
            is_syncing=False,
            status="failed",
            error_message="imap timeout",
            updated_at=LATER,
            last_version=4,
        ),
    ),
    (
        "expiry of the row's task ends the sync",
        RUNNING,
        SyncExpired("t1", T0 + LEASE),
        replace(RUNNING, is_syncing=False, status="expired", updated_at=LATER, last_version=4),
    ),
    (
        "expiry of another task leaves the row's task alone",
        RUNNING,
        SyncExpired("t0", T0),
        replace(RUNNING, updated_at=LATER, last_version=4),
    ),
]


@pytest.mark.parametrize(("name", "before", "event", "after"), CASES, ids=[c[0] for c in CASES])
def test_apply_status(name: str, before: StatusRow | None, event: Event, after: StatusRow) -> None:
    version = 1 if before is None else before.last_version + 1
    expected = replace(after, last_version=version)
    assert apply_status(before, envelope(version, event, minutes=5)) == expected


def test_replacement_after_expiry_shows_the_new_task() -> None:
    history: list[Event] = [
        started("t1"),
        SyncProgressed("t1", 10.0, {"messages": 10}, T0 + LEASE),
        SyncExpired("t1", T0 + LEASE, detected_by="start"),
        SyncStarted(
            "t2",
            "incremental",
            T0 + LEASE,
            T0 + 2 * LEASE,
            replaces_task_id="t1",
            reason="replaced_expired",
            requested_by=None,
        ),
        SyncCompleted("t2", {"messages": 3}, T0 + LEASE),
    ]
    row: StatusRow | None = None
    for version, event in enumerate(history, start=1):
        row = apply_status(row, envelope(version, event, minutes=version))
    assert row == StatusRow(
        user_id="u1",
        task_id="t2",
        is_syncing=False,
        status="completed",
        sync_type="incremental",
        started_at=T0 + LEASE,
        updated_at=T0 + timedelta(minutes=5),
        lease_expires_at=T0 + 2 * LEASE,
        progress_percentage=100.0,
        current_stats={"messages": 3},
        last_version=5,
    )
