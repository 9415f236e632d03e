"""The aggregate's decisions, table-driven with a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.domain.commands import RequestMeta, StartRequested
from core.domain.events import SyncExpired, SyncReused, SyncStarted
from core.domain.user_sync import UserSyncState, decide, evolve, fold

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=30)


def start(force_full: bool = False) -> StartRequested:
    return StartRequested(user_id="u1", force_full=force_full, meta=RequestMeta("req-1"))


def running(started: datetime = T0, sync_type: str = "incremental") -> UserSyncState:
    return UserSyncState(
        task_id="task-old",
        sync_type=sync_type,  # type: ignore[arg-type]
        status="running",
        started_at=started,
        lease_expires_at=started + LEASE,
    )


CASES = [
    # (name, state, now, force_full, expected event types)
    ("first start", UserSyncState(), T0, False, ["SyncStarted"]),
    ("live task is reused", running(), T0 + timedelta(minutes=5), False, ["SyncReused"]),
    (
        "full asked during incremental is queued",
        running(),
        T0 + timedelta(minutes=29),
        True,
        ["SyncReused", "FullSyncQueued"],
    ),
    (
        "full asked during full joins",
        running(sync_type="full"),
        T0 + timedelta(minutes=1),
        True,
        ["SyncReused"],
    ),
    (
        "one microsecond before expiry",
        running(),
        T0 + LEASE - timedelta(microseconds=1),
        False,
        ["SyncReused"],
    ),
    ("exactly at expiry is dead", running(), T0 + LEASE, False, ["SyncExpired", "SyncStarted"]),
    ("long dead", running(), T0 + timedelta(days=3), True, ["SyncExpired", "SyncStarted"]),
    (
        "expired task is not expired twice",
        UserSyncState(task_id="task-old", status="expired"),
        T0,
        False,
        ["SyncStarted"],
    ),
]


@pytest.mark.parametrize(
    ("name", "state", "now", "force_full", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_decisions(
    name: str, state: UserSyncState, now: datetime, force_full: bool, expected: list[str]
) -> None:
    events = decide(state, start(force_full), now, LEASE, make_task_id=lambda: "task-new")
    assert [e.event_type for e in events] == expected


def test_reuse_names_live_task_and_its_type() -> None:
    event, _ = decide(running(sync_type="incremental"), start(True), T0, LEASE)
    assert isinstance(event, SyncReused)
    assert (event.task_id, event.sync_type, event.requested_sync_type) == (
        "task-old",
        "incremental",
        "full",
    )


def test_replacement_expires_old_then_starts_new_with_fresh_lease() -> None:
    now = T0 + timedelta(hours=1)
    expired, started = decide(running(), start(True), now, LEASE, make_task_id=lambda: "task-new")
    assert isinstance(expired, SyncExpired) and expired.task_id == "task-old"
    assert expired.lease_expired_at == T0 + LEASE
    assert isinstance(started, SyncStarted)
    assert (started.task_id, started.sync_type, started.replaces_task_id) == (
        "task-new",
        "full",
        "task-old",
    )
    assert started.lease_expires_at == now + LEASE


def test_fold_tracks_live_task_and_reuses() -> None:
    first = decide(UserSyncState(), start(), T0, LEASE)
    state = fold(first)
    state = fold(decide(state, start(), T0 + timedelta(minutes=1), LEASE), state)
    assert state.status == "running" and state.reuse_count == 1
    later = T0 + timedelta(hours=2)
    state = fold(decide(state, start(), later, LEASE), state)
    assert state.status == "running" and state.started_at == later and state.reuse_count == 0
    assert state.task_id != first[0].task_id


def test_expired_state_is_not_live() -> None:
    state = evolve(running(), SyncExpired(task_id="task-old", lease_expired_at=T0 + LEASE))
    assert not state.is_live(T0)


def test_snapshot_round_trip() -> None:
    state = running()
    assert UserSyncState.from_json(state.to_json()) == state
