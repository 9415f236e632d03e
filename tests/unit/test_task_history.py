"""The task history's fold, table-driven with hand-built envelopes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from core.domain.events import (
    Event,
    SyncCompleted,
    SyncExpired,
    SyncFailed,
    SyncProgressed,
    SyncReused,
    SyncStarted,
)
from projections.task_history import TaskRow, apply_task
from tests.unit.test_status_view import envelope

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=30)
LATER = T0 + timedelta(minutes=5)

RUNNING = TaskRow(
    task_id="t1",
    user_id="u1",
    sync_type="incremental",
    status="running",
    started_at=T0,
    lease_expires_at=T0 + LEASE,
    reuse_count=2,
    progress_percentage=40.0,
    stats={"messages": 40},
    last_version=3,
)

CASES = [
    # (name, row before, event, row after; last_version is checked separately)
    (
        "a start creates the task",
        None,
        SyncStarted(
            "t2",
            "full",
            T0,
            T0 + LEASE,
            replaces_task_id="t1",
            reason="replaced_expired",
            requested_by=None,
        ),
        TaskRow(
            task_id="t2",
            user_id="u1",
            sync_type="full",
            status="running",
            started_at=T0,
            lease_expires_at=T0 + LEASE,
            replaces_task_id="t1",
            start_reason="replaced_expired",
        ),
    ),
    (
        "reuse counts one more join",
        RUNNING,
        SyncReused("t1", "incremental", "full", T0, T0 + LEASE),
        replace(RUNNING, reuse_count=3),
    ),
    (
        "progress records percent, stats and the renewed lease",
        RUNNING,
        SyncProgressed("t1", 60.0, {"messages": 60}, LATER + LEASE),
        replace(
            RUNNING,
            progress_percentage=60.0,
            stats={"messages": 60},
            lease_expires_at=LATER + LEASE,
        ),
    ),
    (
        "completion finishes at 100 percent",
        RUNNING,
        SyncCompleted("t1", {"messages": 99}, LATER),
        replace(
            RUNNING,
            status="completed",
            finished_at=LATER,
            progress_percentage=100.0,
            stats={"messages": 99},
        ),
    ),
    (
        "failure records the error and when",
        RUNNING,
        SyncFailed("t1", "auth revoked", LATER),
        replace(RUNNING, status="failed", finished_at=LATER, error_message="auth revoked"),
    ),
    (
        "expiry dates the end at the lapsed lease, not at detection",
        RUNNING,
        SyncExpired("t1", T0 + LEASE, detected_by="reaper"),
        replace(RUNNING, status="expired", finished_at=T0 + LEASE),
    ),
]


@pytest.mark.parametrize(("name", "before", "event", "after"), CASES, ids=[c[0] for c in CASES])
def test_apply_task(name: str, before: TaskRow | None, event: Event, after: TaskRow) -> None:
    version = 1 if before is None else before.last_version + 1
    assert apply_task(before, envelope(version, event, minutes=90)) == replace(
        after, last_version=version
    )


@pytest.mark.parametrize(
    "event",
    [
        SyncReused("t9", "full", "full", T0, T0 + LEASE),
        SyncProgressed("t9", 1.0, {}, T0 + LEASE),
        SyncCompleted("t9", {}, LATER),
        SyncFailed("t9", "x", LATER),
        SyncExpired("t9", T0),
    ],
    ids=lambda e: e.event_type,
)
def test_event_for_a_task_never_started_makes_no_row(event: Event) -> None:
    assert apply_task(None, envelope(7, event)) is None


def test_history_of_a_task_folds_to_its_final_row() -> None:
    history: list[Event] = [
        SyncStarted("t1", "incremental", T0, T0 + LEASE, reason="first_click", requested_by=None),
        SyncReused("t1", "incremental", "incremental", T0, T0 + LEASE),
        SyncProgressed("t1", 50.0, {"messages": 5}, LATER + LEASE),
        SyncReused("t1", "incremental", "full", T0, LATER + LEASE),
        SyncFailed("t1", "quota", LATER),
    ]
    row: TaskRow | None = None
    for version, event in enumerate(history, start=1):
        row = apply_task(row, envelope(version, event))
    assert row == TaskRow(
        task_id="t1",
        user_id="u1",
        sync_type="incremental",
        status="failed",
        started_at=T0,
        finished_at=LATER,
        lease_expires_at=LATER + LEASE,
        reuse_count=2,
        progress_percentage=50.0,
        start_reason="first_click",
        stats={"messages": 5},
        error_message="quota",
        last_version=5,
    )
