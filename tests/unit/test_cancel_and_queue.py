"""Stop and the queued full sync, decided by the aggregate on a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.domain.commands import (
    CancelSync,
    CompleteSync,
    ExpireStaleSync,
    FailSync,
    RequestMeta,
    StartRequested,
)
from core.domain.events import (
    CancelRequested,
    Event,
    FullSyncQueued,
    SyncCancelled,
    SyncStarted,
)
from core.domain.user_sync import (
    ENDED_BY,
    TaskEnded,
    TaskFenced,
    UserSyncState,
    decide,
    fold,
)

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=30)
META = RequestMeta("req-1")


def started(force_full: bool = False) -> UserSyncState:
    return fold(decide(UserSyncState(), StartRequested("u1", force_full, META), T0, LEASE))


def click(state: UserSyncState, force_full: bool, minutes: int = 1) -> UserSyncState:
    now = T0 + timedelta(minutes=minutes)
    return fold(decide(state, StartRequested("u1", force_full, META), now, LEASE), state)


def test_cancel_records_the_request_then_the_ending() -> None:
    state = started()
    assert state.task_id
    events = decide(state, CancelSync("u1", state.task_id, META), T0, LEASE)
    assert [type(e) for e in events] == [CancelRequested, SyncCancelled]
    after = fold(events, state)
    assert after.status == "cancelled" and not after.is_live(T0)


def test_cancelled_task_is_fenced_and_next_click_starts_a_new_one() -> None:
    state = started()
    assert state.task_id
    state = fold(decide(state, CancelSync("u1", state.task_id, META), T0, LEASE), state)
    with pytest.raises(TaskFenced, match="it is cancelled"):
        decide(state, CompleteSync("u1", str(state.task_id), {}, META), T0, LEASE)
    [new] = decide(state, StartRequested("u1", False, META), T0, LEASE)
    assert new.event_type == "SyncStarted" and new.task_id != state.task_id


@pytest.mark.parametrize(
    ("status", "now", "reason"),
    [("completed", T0, "completed"), ("running", T0 + LEASE, "expired")],
)
def test_cancel_of_an_ended_task_says_how_it_ended(status: str, now: datetime, reason: str) -> None:
    state = started()
    assert state.task_id
    if status == "completed":
        state = fold(
            decide(state, CompleteSync("u1", str(state.task_id), {}, META), T0, LEASE), state
        )
    with pytest.raises(TaskEnded) as ended:
        decide(state, CancelSync("u1", str(state.task_id), META), now, LEASE)
    assert ended.value.status == reason


def test_full_sync_is_queued_once_however_often_asked() -> None:
    state = started()
    queued = decide(state, StartRequested("u1", True, META), T0, LEASE)
    assert [type(e) for e in queued][-1] is FullSyncQueued
    state = fold(queued, state)
    assert state.full_sync_queued
    for minute in range(2, 6):
        again = decide(
            state, StartRequested("u1", True, META), T0 + timedelta(minutes=minute), LEASE
        )
        assert [e.event_type for e in again] == ["SyncReused"]


def test_cancel_drops_the_queued_full_sync() -> None:
    state = click(started(), force_full=True)
    assert state.task_id and state.full_sync_queued
    _, cancelled = decide(state, CancelSync("u1", state.task_id, META), T0, LEASE)
    assert isinstance(cancelled, SyncCancelled) and cancelled.dropped_full_sync
    assert not fold([cancelled], state).full_sync_queued


def ending(state: UserSyncState, how: str) -> list[Event]:
    """The events of the command that ends the task in this way."""
    assert state.task_id
    later = T0 + timedelta(minutes=10)
    if how == "completed":
        return decide(state, CompleteSync("u1", state.task_id, {}, META), later, LEASE)
    if how == "failed":
        return decide(state, FailSync("u1", state.task_id, "quota", META), later, LEASE)
    if how == "expired by the reaper":
        return decide(state, ExpireStaleSync("u1", META), T0 + 2 * LEASE, LEASE)
    return decide(state, StartRequested("u1", False, META), T0 + 2 * LEASE, LEASE)


@pytest.mark.parametrize(
    ("how", "replaces", "reason"),
    [
        ("completed", False, "queued_full_sync"),
        ("failed", False, "queued_full_sync"),
        ("expired by the reaper", True, "queued_full_sync"),
        ("expired, found by an incremental click", True, "replaced_expired"),
    ],
)
def test_queued_full_sync_starts_in_the_command_that_ends_the_task(
    how: str, replaces: bool, reason: str
) -> None:
    meta = RequestMeta("req-full", client="mail-web/2.1")
    state = fold(decide(started(), StartRequested("u1", True, meta), T0, LEASE), started())
    events = ending(state, how)
    assert len(events) == 2
    first, new = events
    assert first.task_id == state.task_id and first.event_type in ENDED_BY
    assert isinstance(new, SyncStarted) and new.task_id != state.task_id
    assert (new.sync_type, new.reason) == ("full", reason)
    assert new.replaces_task_id == (state.task_id if replaces else None)
    expected_client = None if reason == "replaced_expired" else "mail-web/2.1"
    assert new.requested_by == expected_client
    after = fold(events, state)
    assert (after.status, after.sync_type, after.full_sync_queued) == ("running", "full", False)


def test_without_a_queue_an_ending_starts_nothing() -> None:
    assert [e.event_type for e in ending(started(), "completed")] == ["SyncCompleted"]
    assert [e.event_type for e in ending(started(), "expired by the reaper")] == ["SyncExpired"]
