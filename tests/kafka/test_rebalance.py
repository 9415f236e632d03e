"""Projector and worker instances leave and join mid-stream (two of each, then one, then two):
nothing is lost from the views, no task runs twice, and the projector's lag returns to zero."""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from coordinator.dev.apache_kafka import KafkaCluster
from core.database import make_engine
from projections.read_models import ReadModels
from tests.e2e.processes import stop
from tests.e2e.stack import running_stack
from tests.integration.test_projector import projected_views, stored_views
from tests.kafka.load import clicking, settled, wait_until
from tests.support.random_refs import random_user

STARTED = re.compile(r"task (sync_\w+) of \S+: started")


@pytest.fixture
def own_engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=2)
    yield engine
    engine.dispose()


def started_tasks(engine: Engine, users: list[str]) -> set[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT data->>'task_id' FROM events WHERE event_type = 'SyncStarted' "
                "AND stream_id = ANY(:s)"
            ),
            {"s": [f"UserSync-{user}" for user in users]},
        ).all()
    return {row[0] for row in rows}


def lag_is_zero(engine: Engine, group: str) -> bool:
    lags = [lag for g, _, _, lag in ReadModels(engine).projection_lag() if g == group]
    return bool(lags) and max(lags) == 0


def test_consumers_leave_and_join_mid_stream_without_loss_or_a_second_run(
    cluster: KafkaCluster, database_url: str, own_engine: Engine
) -> None:
    users = [random_user("group") for _ in range(12)]
    logs = Path(tempfile.mkdtemp(prefix="sync-test-rebalance-"))  # not tmp_path: pruned
    with (
        ExitStack() as files,
        running_stack(
            database_url,
            cluster.bootstrap,
            components=("relay",),
            demo_messages="20",
            demo_pace="100",
            kafka_replication_factor="3",  # the compose layout: RF 3, min.insync 2
            kafka_min_insync_replicas="2",
            consumer_max_poll_interval_ms="300000",  # the production timing, not Tansu's
        ) as stack,
    ):

        def start(name: str, command: str) -> None:
            log = files.enter_context((logs / f"{name}-{time.monotonic_ns()}.log").open("wb"))
            stack.start(name, command, stderr=log)

        for name in ("project-a", "project-b"):
            start(name, "project")
        for name in ("work-a", "work-b"):
            start(name, "work")
        with clicking(stack, users, per_second=20) as clicks:
            time.sleep(4)
            stop(stack.processes["project-b"])  # two of each, then one...
            stop(stack.processes["work-b"])
            time.sleep(4)
            start("project-b", "project")  # ...then two again
            start("work-b", "work")
            time.sleep(4)
        assert set(clicks.answered) == {202}, clicks.answered
        wait_until(lambda: settled(stack, own_engine, users), "the syncs to end", 90)
        group = stack.settings["projector_group"]
        wait_until(lambda: lag_is_zero(own_engine, group), "the projector's lag to be zero")
    runs = Counter(
        match.group(1)
        for log in logs.glob("work-*.log")
        for match in STARTED.finditer(log.read_text(errors="replace"))
    )
    shutil.rmtree(logs)
    assert projected_views(own_engine, users) == stored_views(own_engine, users)
    started = started_tasks(own_engine, users)
    assert set(runs) == started and len(started) >= len(users)
    assert [task for task, count in runs.items() if count > 1] == []
