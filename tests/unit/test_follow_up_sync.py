"""New-mail notices and the follow-up sync they queue, decided by the aggregate on a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.domain.commands import (
    CancelSync,
    Command,
    CompleteSync,
    ExpireStaleSync,
    FailSync,
    RequestMeta,
    StartRequested,
)
from core.domain.events import (
    FollowUpSyncQueued,
    FullSyncQueued,
    SyncCancelled,
    SyncReused,
    SyncStarted,
)
from core.domain.user_sync import UserSyncState, decide, fold

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=30)
META = RequestMeta("req-1")


def notice(user: str = "u1") -> StartRequested:
    return StartRequested(user, False, META, trigger="new_mail")


def apply(
    state: UserSyncState, command: Command, minutes: float = 1
) -> tuple[list[str], UserSyncState]:
    events = decide(state, command, T0 + timedelta(minutes=minutes), LEASE)
    return [e.event_type for e in events], fold(events, state)


def running() -> UserSyncState:
    return fold(decide(UserSyncState(), StartRequested("u1", False, META), T0, LEASE))


def test_a_notice_with_no_sync_running_starts_one_saying_why() -> None:
    [started] = decide(UserSyncState(), notice(), T0, LEASE)
    assert isinstance(started, SyncStarted)
    assert (started.reason, started.sync_type) == ("new_mail", "incremental")


def test_a_storm_of_notices_during_a_sync_queues_exactly_one_follow_up() -> None:
    state = running()
    seen: list[list[str]] = []
    for second in range(1, 51):
        types, state = apply(state, notice(), second / 60)
        seen.append(types)
    assert seen[0] == ["SyncReused", "FollowUpSyncQueued"]
    assert all(types == ["SyncReused"] for types in seen[1:])
    assert state.follow_up_queued and state.reuse_count == 50


def test_a_click_during_a_sync_joins_it_and_queues_nothing() -> None:
    types, state = apply(running(), StartRequested("u1", False, META))
    assert types == ["SyncReused"] and not state.follow_up_queued


@pytest.mark.parametrize("ending", ["complete", "fail", "expire"])
def test_the_follow_up_starts_with_the_ending_in_one_command(ending: str) -> None:
    state = running()
    assert state.task_id
    _, state = apply(state, notice())
    task = state.task_id or ""
    commands: dict[str, Command] = {
        "complete": CompleteSync("u1", task, {}, META),
        "fail": FailSync("u1", task, "boom", META),
        "expire": ExpireStaleSync("u1", META),
    }
    command = commands[ending]
    minutes = 31 if ending == "expire" else 2
    events = decide(state, command, T0 + timedelta(minutes=minutes), LEASE)
    started = events[-1]
    assert len(events) == 2 and isinstance(started, SyncStarted)
    assert (started.reason, started.sync_type) == ("queued_follow_up", "incremental")
    after = fold(events, state)
    assert after.status == "running" and not after.follow_up_queued
    # The follow-up itself gets a follow-up only from a notice that comes during it.
    assert apply(after, notice(), minutes + 1)[0] == ["SyncReused", "FollowUpSyncQueued"]


def test_a_queued_full_sync_covers_new_mail() -> None:
    types, state = apply(running(), StartRequested("u1", True, META))
    assert types == ["SyncReused", "FullSyncQueued"]
    assert apply(state, notice(), 2)[0] == ["SyncReused"]


def test_a_full_sync_asked_for_after_a_notice_is_queued_and_wins() -> None:
    _, state = apply(running(), notice())
    types, state = apply(state, StartRequested("u1", True, META), 2)
    assert types == ["SyncReused", "FullSyncQueued"]
    assert state.task_id
    events = decide(state, CompleteSync("u1", state.task_id, {}, META), T0, LEASE)
    assert [(e.event_type, getattr(e, "reason", None)) for e in events][-1] == (
        "SyncStarted",
        "queued_full_sync",
    )
    assert not fold(events, state).follow_up_queued


def test_stop_drops_the_follow_up_and_says_so() -> None:
    _, state = apply(running(), notice())
    assert state.task_id
    events = decide(state, CancelSync("u1", state.task_id, META), T0, LEASE)
    cancelled = events[-1]
    assert isinstance(cancelled, SyncCancelled) and cancelled.dropped_follow_up
    assert not cancelled.dropped_full_sync
    after = fold(events, state)
    assert after.status == "cancelled" and not after.follow_up_queued


def test_the_follow_up_survives_a_snapshot() -> None:
    _, state = apply(running(), notice())
    assert UserSyncState.from_json(state.to_json()) == state
    # A snapshot written before the field existed reads as nothing queued.
    old = {k: v for k, v in state.to_json().items() if k != "follow_up_queued"}
    assert not UserSyncState.from_json(old).follow_up_queued


def test_the_queued_event_names_the_task_it_waits_behind() -> None:
    state = running()
    events = decide(state, notice(), T0, LEASE)
    assert isinstance(events[0], SyncReused)
    assert events[1] == FollowUpSyncQueued(task_id=state.task_id or "", trigger="new_mail")
    assert not any(isinstance(e, FullSyncQueued) for e in events)
