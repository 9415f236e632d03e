"""`syncctl replay rebuild` against real views kept by the live projector's code."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from coordinator.replay.history import HistoryReader
from coordinator.replay.rebuild import fold_into
from coordinator.replay.shadow_views import ShadowViews
from coordinator.replay.swap import promote
from core.database import make_engine
from core.domain.events import Envelope
from core.kafka.event_source import Delivery
from projections.batches import apply_batch
from projections.store import ProjectionStore
from tests.integration.test_projector import (
    every_outcome,
    projected_views,
    random_workload,
    stored_views,
)
from tests.integration.test_replay_verify import replay
from tests.support.command_loop import command_store, run
from tests.support.random_refs import random_user


@pytest.fixture
def own_engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=4)
    yield engine
    engine.dispose()


@pytest.fixture
def projections(database_url: str) -> Iterator[ProjectionStore]:
    store = ProjectionStore(database_url)
    yield store
    store.close()


def stored(engine: Engine, users: list[str]) -> list[Envelope]:
    store = command_store(engine)
    return [e for user in users for e in run(store.read_stream(user))]


def project(projections: ProjectionStore, envelopes: list[Envelope]) -> int:
    """What the live projector does with these events arriving from the topic."""
    return apply_batch(projections, [Delivery(0, i, e) for i, e in enumerate(envelopes)])


def history(engine: Engine, projections: ProjectionStore) -> list[str]:
    """A random workload with every outcome, projected by the live projector's code."""
    users = [random_user() for _ in range(20)]
    random_workload(engine, users[:16], commands=300, seed=4242)
    every_outcome(engine, users[16:])
    project(projections, stored(engine, users))
    assert projected_views(engine, users) == stored_views(engine, users)
    return users


def diff_lines(out: str) -> list[str]:
    """The differing rows of a rebuild's output (without header and summary)."""
    return out.splitlines()[1:-1]


def test_rebuild_after_a_random_workload_shows_no_diff(
    own_engine: Engine, database_url: str, projections: ProjectionStore
) -> None:
    history(own_engine, projections)
    code, out, err = replay(database_url, "rebuild")
    assert code == 0, out
    assert diff_lines(out) == []
    assert out.splitlines()[-1] == "0 differing rows (status 0, tasks 0)"
    assert " events " in err and "ev/s" in err and "replayed" in err
    with own_engine.connect() as conn:
        shadow = conn.execute(text("SELECT count(*) FROM sync_tasks_rebuild")).scalar_one()
        live = conn.execute(text("SELECT count(*) FROM sync_tasks")).scalar_one()
    assert shadow == live > 20


CORRUPTIONS = {
    "field": (
        "UPDATE sync_status SET progress_percentage = 99.5 WHERE user_id = :user",
        "status",
        "differs: progress_percentage: shadow {shadow}, live 99.5",
    ),
    "deleted": (
        "DELETE FROM sync_tasks WHERE task_id = :task",
        "tasks",
        "missing in live",
    ),
    "extra": (
        "INSERT INTO sync_tasks (task_id, user_id, sync_type, status, started_at, last_version) "
        "VALUES (:task || '_ghost', :user, 'full', 'running', now(), 1)",
        "tasks",
        "missing in shadow (the store has no event that makes it)",
    ),
}


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_a_corrupted_view_row_is_the_whole_diff_and_swap_repairs_it(
    own_engine: Engine, database_url: str, projections: ProjectionStore, kind: str
) -> None:
    users = history(own_engine, projections)
    statement, view, expected = CORRUPTIONS[kind]
    with own_engine.begin() as conn:
        user, task, percent = conn.execute(
            text(
                "SELECT user_id, task_id, progress_percentage FROM sync_status "
                "WHERE user_id = ANY(:users) ORDER BY user_id LIMIT 1"
            ),
            {"users": users},
        ).one()
        conn.execute(text(statement), {"user": user, "task": task})
    key = {"field": user, "deleted": task, "extra": f"{task}_ghost"}[kind]

    code, out, _ = replay(database_url, "rebuild")
    assert code == 3
    [line] = diff_lines(out)
    assert line.split()[:2] == [view, key]
    # The rows travel as jsonb, which writes a whole double without its ".0".
    shown = repr(int(percent)) if float(percent).is_integer() else repr(percent)
    assert line.split(maxsplit=2)[2] == expected.format(shadow=shown)

    code, out, _ = replay(database_url, "rebuild", "--swap")
    assert code == 3
    assert out.splitlines()[-1].startswith("swapped: status ")
    assert replay(database_url, "rebuild")[0] == 0
    assert projected_views(own_engine, users) == stored_views(own_engine, users)


def test_swap_keeps_what_the_projector_applied_after_the_snapshot(
    own_engine: Engine, database_url: str, projections: ProjectionStore
) -> None:
    users = history(own_engine, projections)
    with own_engine.begin() as conn:
        conn.execute(
            text("UPDATE sync_status SET status = 'bogus' WHERE user_id = ANY(:u)"), {"u": users}
        )
    views = ShadowViews(database_url)
    try:
        views.prepare(["status", "tasks"])
        with HistoryReader(database_url) as reader:
            fold_into(reader.events(), views)
        views.commit()
        snapshot = {u: len(stored(own_engine, [u])) for u in users}

        def after(version_of: dict[str, int], some: list[str]) -> list[Envelope]:
            return [e for e in stored(own_engine, some) if e.version > version_of[e.user_id]]

        # After the rebuild's snapshot the live projector goes on: it applies some users'
        # new events before the swap, and other users' events are still on their way.
        random_workload(own_engine, users[:4], commands=40, seed=7)
        early = after(snapshot, users[:4])
        assert {e.user_id for e in early} == set(users[:4])
        assert project(projections, early) == len(early)
        random_workload(own_engine, users[4:8], commands=40, seed=8)
        late = after(snapshot, users[4:8])
        applied_late: list[int] = []
        blocked = threading.Thread(target=lambda: applied_late.append(project(projections, late)))
        with views.swap(["status", "tasks"], lock_timeout_seconds=5) as tx:
            blocked.start()
            blocked.join(0.5)
            assert blocked.is_alive()  # the projector waits for the swap's lock
            promote(tx, ["status", "tasks"], ["status", "tasks"])
        blocked.join(10)
    finally:
        views.close()
    # Promoted rows were folded from the store under the lock: the early users keep what
    # the projector had applied, and the late events arrive as redeliveries.
    assert applied_late == [0]
    assert projected_views(own_engine, users) == stored_views(own_engine, users)
    now = {u: len(stored(own_engine, [u])) for u in users}
    random_workload(own_engine, users[:8], commands=40, seed=9)
    newest = after(now, users)
    assert project(projections, newest) == len(newest) > 0
    assert projected_views(own_engine, users) == stored_views(own_engine, users)
    assert replay(database_url, "rebuild")[0] == 0


def test_one_rebuild_at_a_time_and_a_swap_that_cannot_lock_changes_nothing(
    own_engine: Engine, database_url: str, projections: ProjectionStore
) -> None:
    users = history(own_engine, projections)
    running = ShadowViews(database_url)
    try:
        code, _, err = replay(database_url, "rebuild")
    finally:
        running.close()
    assert code == 2 and "another `syncctl replay rebuild` is running" in err

    with own_engine.begin() as conn:
        conn.execute(
            text("UPDATE sync_status SET status = 'bogus' WHERE user_id = :u"), {"u": users[0]}
        )
    with own_engine.connect() as writer:
        writer.execute(text("LOCK TABLE sync_status IN ROW EXCLUSIVE MODE"))  # a projector batch
        code, out, err = replay(database_url, "rebuild", "--swap", "--lock-timeout", "0.3")
        writer.rollback()
    assert code == 2 and "stayed locked" in err
    assert "swapped" not in out
    assert replay(database_url, "rebuild")[0] == 3  # still corrupt: the swap changed nothing
