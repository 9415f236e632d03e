"""Reports, completion, failure, reaper expiry and fencing, table-driven with a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.domain.commands import (
    CompleteSync,
    ExpireStaleSync,
    FailSync,
    ReportProgress,
    RequestMeta,
)
from core.domain.events import SyncCompleted, SyncExpired, SyncFailed, SyncProgressed
from core.domain.user_sync import TaskFenced, UserSyncState, decide, fold

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=30)
META = RequestMeta("req")


def state(status: str = "running", task: str = "t1", started: datetime = T0) -> UserSyncState:
    return UserSyncState(
        task_id=task,
        sync_type="full",
        status=status,  # type: ignore[arg-type]
        started_at=started,
        lease_expires_at=started + LEASE,
    )


def progress(task: str = "t1", percent: float = 40) -> ReportProgress:
    return ReportProgress("u", task, percent, {"imported": 4}, META)


FENCED = [
    ("other task", state(), progress("t0"), T0, "the live task is t1"),
    ("completed task", state("completed"), progress(), T0, "it is completed"),
    ("failed task", state("failed"), CompleteSync("u", "t1", {}, META), T0, "it is failed"),
    ("expired task", state("expired"), FailSync("u", "t1", "x", META), T0, "it is expired"),
    ("lease ran out", state(), progress(), T0 + LEASE, "its lease ran out"),
    ("no task at all", UserSyncState(), progress(), T0, "the live task is none"),
]


@pytest.mark.parametrize(
    ("name", "current", "command", "now", "reason"), FENCED, ids=[f[0] for f in FENCED]
)
def test_reports_for_a_task_that_is_not_live_are_fenced(
    name: str, current: UserSyncState, command: ReportProgress, now: datetime, reason: str
) -> None:
    with pytest.raises(TaskFenced, match=reason):
        decide(current, command, now, LEASE)


def test_progress_renews_the_lease_from_now() -> None:
    now = T0 + timedelta(minutes=29)
    [event] = decide(state(), progress(percent=55), now, LEASE)
    assert isinstance(event, SyncProgressed)
    assert event.lease_expires_at == now + LEASE and event.percent == 55
    renewed = fold([event], state())
    assert renewed.is_live(T0 + timedelta(minutes=45)) and renewed.percent == 55


def test_completion_and_failure_end_the_task() -> None:
    [done] = decide(state(), CompleteSync("u", "t1", {"imported": 9}, META), T0, LEASE)
    [failed] = decide(state(), FailSync("u", "t1", "imap refused", META), T0, LEASE)
    assert isinstance(done, SyncCompleted) and done.stats == {"imported": 9}
    assert isinstance(failed, SyncFailed) and failed.error == "imap refused"
    assert fold([done], state()).status == "completed"
    assert not fold([failed], state()).is_live(T0)


REAPER = [
    ("lease ran out", state(), T0 + LEASE, ["SyncExpired"]),
    ("still live", state(), T0 + LEASE - timedelta(seconds=1), []),
    ("already completed", state("completed"), T0 + 2 * LEASE, []),
    ("already expired", state("expired"), T0 + 2 * LEASE, []),
    ("never started", UserSyncState(), T0, []),
]


@pytest.mark.parametrize(("name", "current", "now", "expected"), REAPER, ids=[r[0] for r in REAPER])
def test_reaper_expires_only_lapsed_running_tasks(
    name: str, current: UserSyncState, now: datetime, expected: list[str]
) -> None:
    events = decide(current, ExpireStaleSync("u", META), now, LEASE)
    assert [e.event_type for e in events] == expected
    if events:
        assert isinstance(events[0], SyncExpired) and events[0].detected_by == "reaper"
