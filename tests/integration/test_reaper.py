"""The reaper against real PostgreSQL: lapsed tasks expire, renewed and finished ones do not."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from coordinator.entrypoints.reap import reap_once
from coordinator.service.handlers import Dependencies, handle
from core.database import make_engine
from core.domain.commands import CompleteSync, ReportProgress, RequestMeta, StartRequested
from core.domain.user_sync import TaskFenced
from tests.support.command_loop import command_store, run
from tests.support.random_refs import random_user

META = RequestMeta("test")


def test_reaper_expires_lapsed_tasks_only(database_url: str) -> None:
    engine: Engine = make_engine(database_url, pool_size=2)
    store = command_store(engine)
    short = Dependencies(store, timedelta(seconds=1), 3)
    lapsed, renewed, finished = random_user(), random_user(), random_user()
    tasks = {
        u: run(handle(StartRequested(u, False, META), short)).task_id
        for u in (lapsed, renewed, finished)
    }
    run(handle(CompleteSync(finished, tasks[finished], {}, META), short))
    time.sleep(0.6)
    long = Dependencies(store, timedelta(minutes=30), 3)
    run(handle(ReportProgress(renewed, tasks[renewed], 10, {}, META), long))
    time.sleep(0.6)
    assert run(reap_once(store, short)) == 1
    assert run(reap_once(store, short)) == 0  # nothing left to do: idempotent
    types = {u: [e.event_type for e in run(store.read_stream(u))] for u in tasks}
    assert types[lapsed] == ["SyncStarted", "SyncExpired"]
    assert types[renewed] == ["SyncStarted", "SyncProgressed"]
    assert types[finished] == ["SyncStarted", "SyncCompleted"]
    expired = run(store.read_stream(lapsed))[-1].data
    assert expired.detected_by == "reaper"  # type: ignore[union-attr]
    with pytest.raises(TaskFenced):
        run(handle(ReportProgress(lapsed, tasks[lapsed], 50, {}, META), long))
    engine.dispose()
