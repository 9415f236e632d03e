"""Stop and the queued full sync, decided by the aggregate on a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from coordinator.domain.commands import CancelSync, CompleteSync, RequestMeta, StartRequested
from coordinator.domain.events import CancelRequested, FullSyncQueued, SyncCancelled
from coordinator.domain.user_sync import (
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
        decide(state, CompleteSync("u1", state.task_id, {}, META), T0, LEASE)
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
        state = fold(decide(state, CompleteSync("u1", state.task_id, {}, META), T0, LEASE), state)
    with pytest.raises(TaskEnded) as ended:
        decide(state, CancelSync("u1", state.task_id, META), now, LEASE)
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
