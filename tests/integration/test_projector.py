"""The projector against real PostgreSQL and a real broker: views equal a fold of the store."""

from __future__ import annotations

import logging
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import fields
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from kafka import KafkaConsumer, TopicPartition
from sqlalchemy import Engine, make_url, text

from coordinator.adapters.kafka.topic import ensure_topic
from coordinator.dev.processes import stop_processes
from coordinator.relay.outbox_relay import RelayConfig
from coordinator.service.handlers import (
    Dependencies,
    handle,
)
from core.database import libpq_url, make_engine
from core.domain.commands import (
    CancelSync,
    CompleteSync,
    ExpireStaleSync,
    FailSync,
    ReportProgress,
    RequestMeta,
    StartRequested,
)
from core.domain.events import Envelope
from core.domain.user_sync import TaskEnded, TaskFenced, TaskNotFound
from core.kafka.event_source import Delivery, SourceConfig
from projections.batches import apply_batch
from projections.projector import Projector, ProjectorConfig
from projections.status_view import StatusRow, apply_status
from projections.store import ProjectionStore
from projections.task_history import TaskRow, apply_task
from tests.e2e.processes import process_env
from tests.integration.test_outbox_relay import RunningRelay
from tests.support.command_loop import command_store, run
from tests.support.random_refs import random_name, random_user

PARTITIONS = 4
Views = tuple[dict[str, StatusRow], dict[str, TaskRow]]


@pytest.fixture
def own_engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=4)
    yield engine
    engine.dispose()


def random_workload(engine: Engine, users: list[str], commands: int, seed: int) -> None:
    """Starts (clicks and new-mail notices), reuses, queued full syncs and follow-ups,
    progress, endings of every kind, through the handlers."""
    rng = random.Random(seed)
    store = command_store(engine)
    lease = Dependencies(store, timedelta(minutes=30), 3)
    # A lease that lapses at once, so starts and the reaper record expiries too.
    lapsing = Dependencies(store, timedelta(milliseconds=1), 3)
    for _ in range(commands):
        user, roll, meta = rng.choice(users), rng.random(), RequestMeta(random_name("req"))
        task = run(store.snapshot(user))[1].task_id or "none"
        stats = {"messages": rng.randrange(1000)}
        try:
            if roll < 0.35:
                deps = lapsing if rng.random() < 0.2 else lease
                full = rng.random() < 0.3
                notice = rng.random() < 0.3
                run(
                    handle(
                        StartRequested(user, full, meta, "new_mail" if notice else "click"), deps
                    )
                )
            elif roll < 0.6:
                percent = round(rng.uniform(0, 99), 2)
                run(handle(ReportProgress(user, task, percent, stats, meta), lease))
            elif roll < 0.7:
                run(handle(CompleteSync(user, task, stats, meta), lease))
            elif roll < 0.8:
                run(handle(FailSync(user, task, f"error {rng.randrange(9)}", meta), lease))
            elif roll < 0.88:
                run(handle(CancelSync(user, task, meta), lease))
            else:
                run(handle(ExpireStaleSync(user, meta), lease))
        except (TaskFenced, TaskEnded, TaskNotFound):
            pass  # a report or cancel for a task that is no longer live: the domain refuses it


def every_outcome(engine: Engine, users: list[str]) -> None:
    """One user per outcome: completed, failed, reused, expired and replaced."""
    store = command_store(engine)
    lease = Dependencies(store, timedelta(minutes=30), 3)
    done, failed, reused, lapsed = users

    def meta() -> RequestMeta:
        return RequestMeta(random_name("req"))

    def task(user: str) -> str:
        return run(store.snapshot(user))[1].task_id or "none"

    for user in (done, failed, reused):
        run(handle(StartRequested(user, False, meta()), lease))
    run(handle(ReportProgress(done, task(done), 50.0, {"messages": 5}, meta()), lease))
    run(handle(CompleteSync(done, task(done), {"messages": 10}, meta()), lease))
    run(handle(FailSync(failed, task(failed), "auth revoked", meta()), lease))
    run(handle(StartRequested(reused, True, meta()), lease))
    run(handle(StartRequested(lapsed, False, meta()), Dependencies(store, timedelta(0), 3)))
    run(handle(StartRequested(lapsed, False, meta()), lease))


def fold_views(envelopes: Iterable[Envelope]) -> Views:
    """What the views must hold: the events folded in order, stream by stream."""
    statuses: dict[str, StatusRow] = {}
    tasks: dict[str, TaskRow] = {}
    for envelope in envelopes:
        statuses[envelope.user_id] = apply_status(statuses.get(envelope.user_id), envelope)
        task = apply_task(tasks.get(envelope.data.task_id), envelope)
        if task is not None:
            tasks[task.task_id] = task
    return statuses, tasks


def stored_views(engine: Engine, users: list[str]) -> Views:
    store = command_store(engine)
    return fold_views(e for user in users for e in run(store.read_stream(user)))


def projected_views(engine: Engine, users: list[str]) -> Views:
    """The rows the projector wrote for these users, read without the projector's code."""
    status_columns = ", ".join(f.name for f in fields(StatusRow))
    task_columns = ", ".join(f.name for f in fields(TaskRow))
    where = {"users": users}
    with engine.connect() as conn:
        statuses = conn.execute(
            text(f"SELECT {status_columns} FROM sync_status WHERE user_id = ANY(:users)"), where
        ).mappings()
        tasks = conn.execute(
            text(f"SELECT {task_columns} FROM sync_tasks WHERE user_id = ANY(:users)"), where
        ).mappings()
        return (
            {r["user_id"]: StatusRow(**r) for r in statuses},
            {r["task_id"]: TaskRow(**r) for r in tasks},
        )


def wait_for(condition: Callable[[], bool], timeout: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def event_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM events")).scalar_one())


class ProjectorThread:
    def __init__(self, database_url: str, bootstrap: str, topic: str, group: str) -> None:
        source = SourceConfig(bootstrap, topic, group, max_poll_interval_ms=1000)
        config = ProjectorConfig(source, database_url, report_seconds=0.5, max_backoff_seconds=0.5)
        self.stop = threading.Event()
        self.projector = Projector(config, self.stop)
        self.thread = threading.Thread(target=self.projector.run, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(15)
        assert not self.thread.is_alive()


def start_relay(engine: Engine, url: str, bootstrap: str, topic: str) -> RunningRelay:
    ensure_topic(bootstrap, topic, PARTITIONS)
    config = RelayConfig(bootstrap, topic, PARTITIONS, batch_size=200, poll_seconds=0.2)
    return RunningRelay(engine, url, config)


def test_views_equal_a_fold_of_the_store_and_redelivery_changes_nothing(
    own_engine: Engine, database_url: str, kafka_bootstrap: str
) -> None:
    topic, users, seed = random_name("events"), [random_user() for _ in range(16)], time.time_ns()
    relay = start_relay(own_engine, database_url, kafka_bootstrap, topic)
    first = ProjectorThread(database_url, kafka_bootstrap, topic, random_name("group"))
    try:
        random_workload(own_engine, users[:12], commands=250, seed=seed)
        every_outcome(own_engine, users[12:])
        expected = stored_views(own_engine, users)
        wait_for(lambda: projected_views(own_engine, users) == expected, what=f"seed {seed}")
        assert first.projector.applied == event_count(own_engine)
        wait_for(lambda: lag_rows(own_engine) == PARTITIONS, what="lag of every partition")
    finally:
        first.close()
        relay.close()
    # The comparison is worth something only if the views hold every kind of row.
    assert {s.status for s in expected[0].values()} >= {"running", "completed", "failed"}
    assert {t.status for t in expected[1].values()} >= {"completed", "failed", "expired"}
    assert any(t.reuse_count for t in expected[1].values())
    assert any(t.replaces_task_id for t in expected[1].values())

    before = raw_status_rows(own_engine)
    again = ProjectorThread(database_url, kafka_bootstrap, topic, random_name("group"))
    try:
        total = event_count(own_engine)
        wait_for(lambda: again.projector.consumed >= total, what="the second group's replay")
    finally:
        again.close()
    assert again.projector.applied == 0
    assert raw_status_rows(own_engine) == before
    assert projected_views(own_engine, users) == expected


def test_a_gap_is_filled_from_the_event_store(engine: Engine, shared_database_url: str) -> None:
    user, store = random_user(), command_store(engine)
    random_workload(engine, [user], commands=40, seed=7)
    events = run(store.read_stream(user))
    assert len(events) >= 6
    projections = ProjectionStore(shared_database_url)
    try:
        assert apply_batch(projections, [Delivery(0, 0, events[0])]) == 1
        # Version 5 arrives while 2..4 are missing: they are read from the store first.
        assert apply_batch(projections, [Delivery(0, 4, events[4])]) == 4
        assert projected_views(engine, [user]) == fold_views(events[:5])
        # Late copies of 2..4 change nothing; a full replay applies only what is new.
        late = [Delivery(0, i, e) for i, e in enumerate(events[1:4], start=1)]
        assert apply_batch(projections, late) == 0
        replay = [Delivery(0, i, e) for i, e in enumerate(events)]
        assert apply_batch(projections, replay) == len(events) - 5
    finally:
        projections.close()
    assert projected_views(engine, [user]) == fold_views(events)


def test_a_stale_write_never_moves_a_row_backwards(
    engine: Engine, shared_database_url: str
) -> None:
    user = random_user()
    random_workload(engine, [user], commands=30, seed=3)
    events = run(command_store(engine).read_stream(user))
    newer, older = fold_views(events), fold_views(events[:2])
    projections = ProjectionStore(shared_database_url)
    try:
        for statuses, tasks in (newer, older):
            with projections.transaction() as tx:
                tx.save(list(statuses.values()), list(tasks.values()))
    finally:
        projections.close()
    assert projected_views(engine, [user]) == newer


def test_projectors_racing_over_new_users_end_at_the_fold(
    engine: Engine, shared_database_url: str
) -> None:
    users = [random_user() for _ in range(8)]
    random_workload(engine, users, commands=80, seed=5)
    store = command_store(engine)
    streams = [run(store.read_stream(user)) for user in users]
    whole = [Delivery(0, 0, e) for events in streams for e in events]
    prefixes = [Delivery(0, 0, e) for events in streams for e in events[: len(events) // 2]]
    projections = ProjectionStore(shared_database_url, pool_size=2)
    try:
        for _ in range(4):
            with engine.begin() as conn:  # new users again: no row to lock
                conn.execute(text("DELETE FROM sync_status WHERE user_id = ANY(:u)"), {"u": users})
                conn.execute(text("DELETE FROM sync_tasks WHERE user_id = ANY(:u)"), {"u": users})
            start = threading.Barrier(2)

            def race(batch: list[Delivery], start: threading.Barrier = start) -> None:
                start.wait()
                apply_batch(projections, batch)

            racers = [threading.Thread(target=race, args=(b,)) for b in (whole, prefixes)]
            for racer in racers:
                racer.start()
            for racer in racers:
                racer.join(30)
            assert projected_views(engine, users) == fold_views(e.envelope for e in whole)
    finally:
        projections.close()


def test_offsets_wait_while_the_database_is_down(
    own_engine: Engine, database_url: str, kafka_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    topic, group, users = random_name("events"), random_name("group"), [random_user()]
    relay = start_relay(own_engine, database_url, kafka_bootstrap, topic)
    try:
        random_workload(own_engine, users, commands=30, seed=11)
        wait_for(lambda: outbox_rows(own_engine) == 0, what="the relay")
    finally:
        relay.close()
    total = event_count(own_engine)
    caplog.set_level(logging.WARNING, logger="projections.projector")
    with refused_connections(database_url):
        projector = ProjectorThread(database_url, kafka_bootstrap, topic, group)
        try:
            wait_for(lambda: "database unavailable" in caplog.text, what="a failed batch")
            time.sleep(1)  # several retries of the same batch
            assert committed(kafka_bootstrap, topic, group) == 0
            assert projector.projector.applied == 0
        except BaseException:
            projector.close()
            raise
    try:
        wait_for(lambda: projected_views(own_engine, users) == stored_views(own_engine, users))
        assert projector.projector.applied == total
        wait_for(lambda: committed(kafka_bootstrap, topic, group) == total, what="offsets")
    finally:
        projector.close()


def test_survivor_takes_over_the_partitions_of_a_killed_projector(
    own_engine: Engine, database_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic, group = random_name("events"), random_name("group")
    users = [random_user() for _ in range(40)]  # every partition gets some
    relay = start_relay(own_engine, database_url, kafka_bootstrap, topic)
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    settings = {
        "database_url": database_url,
        "kafka_bootstrap": kafka_bootstrap,
        "kafka_topic": topic,
        "projector_group": group,
        "consumer_max_poll_interval_ms": "1500",
    }
    processes = [spawn_projector(log, settings) for log in logs]
    try:
        random_workload(own_engine, users, commands=120, seed=1)
        wait_for(lambda: all(assigned(log) for log in logs), what="both assigned")
        wait_for(lambda: sorted(assigned(logs[0]) + assigned(logs[1])) == list(range(PARTITIONS)))
        victim, survivor = processes
        later = threading.Thread(target=random_workload, args=(own_engine, users, 200, 2))
        later.start()
        time.sleep(0.3)
        victim.send_signal(signal.SIGKILL)
        later.join()
        expected = stored_views(own_engine, users)
        wait_for(lambda: projected_views(own_engine, users) == expected, what="views after kill")
        wait_for(lambda: assigned(logs[1]) == list(range(PARTITIONS)), what="the takeover")
        assert survivor.poll() is None
    finally:
        for process in processes:
            stop_process(process)
        relay.close()
    assert processes[1].returncode == 0  # SIGTERM is a clean stop


def spawn_projector(log: Path, settings: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "coordinator.cli", "project"],
            env=process_env(None, **settings),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop_process(process: subprocess.Popen[bytes]) -> None:
    stop_processes(process, grace=15)


def assigned(log: Path) -> list[int]:
    """The partitions a projector process last said it owns."""
    said = re.findall(r"assigned partitions \[([\d, ]*)\]", log.read_text())
    return [int(p) for p in re.findall(r"\d+", said[-1])] if said else []


def committed(bootstrap: str, topic: str, group: str) -> int:
    """Offsets the group committed, summed over the topic's partitions."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        offsets = [consumer.committed(TopicPartition(topic, p)) for p in range(PARTITIONS)]
        return sum(o or 0 for o in offsets)
    finally:
        consumer.close()


@contextmanager
def refused_connections(database_url: str) -> Iterator[None]:
    """The database refuses new connections, as during a restart, until the block ends."""
    name = make_url(database_url).database
    admin = libpq_url(make_url(database_url).set(database="postgres").render_as_string(False))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            yield
        finally:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


def outbox_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM outbox")).scalar_one())


def lag_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM projection_lag")).scalar_one())


def raw_status_rows(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT * FROM sync_status ORDER BY user_id")).all())
