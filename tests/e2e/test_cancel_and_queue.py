"""Stop and the queued full sync with every process running: the worker obeys both."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from sqlalchemy import text

from core.database import make_engine
from tests.e2e.stack import Stack, running_stack
from tests.e2e.test_sync_lifecycle import click, status, warm_up, watch_until
from tests.support.random_refs import random_user

PIPELINE = ("relay", "project", "reap")


def cancel(stack: Stack, user: str, task_id: str) -> httpx.Response:
    return httpx.post(
        f"{stack.api.base_url}/sync/tasks/{task_id}/cancel", headers=stack.api.headers(user)
    )


def wait_for_line(log: Path, needles: tuple[str, ...], timeout: float) -> tuple[str, float]:
    """The first log line holding any needle, and when it was seen (monotonic)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if any(needle in line for needle in needles):
                return line, time.monotonic()
        time.sleep(0.01)
    raise AssertionError(f"no line with {needles} in {timeout}s:\n{log.read_text()[-3000:]}")


def test_cancel_stops_the_worker_within_a_second_and_the_next_click_starts_anew(
    database_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    user, log = random_user("stop"), tmp_path / "worker.log"
    with (
        log.open("wb") as worker_log,
        running_stack(
            database_url,
            kafka_bootstrap,
            components=PIPELINE,
            demo_messages="4000",  # incremental: 2000 messages at 40/s, far longer than the test
            demo_pace="40",
        ) as stack,
    ):
        stack.start("work", "work", worker_log)
        warm_up(stack)
        task_id = click(stack, user)["task_id"]
        watch_until(stack, user, lambda s: s["progress_percentage"] > 0)
        answer = cancel(stack, user, task_id)
        asked = time.monotonic()
        assert answer.status_code == 202, answer.text
        assert answer.json()["status"] == "cancelled"
        line, stopped = wait_for_line(
            log, (f"task {task_id}: cancelled", f"task {task_id}: fenced"), 10
        )
        cancelled = status(stack, user, min_version=answer.json()["version"])
        history = httpx.get(
            f"{stack.api.base_url}/sync/tasks/{task_id}", headers=stack.api.headers(user)
        ).json()
        again = click(stack, user)
        running = watch_until(
            stack, user, lambda s: s["task_id"] == again["task_id"] and s["progress_percentage"] > 0
        )[-1]
    print(f"worker stopped {stopped - asked:.3f} s after the cancel was answered: {line}")
    assert stopped - asked < 1.0, line
    assert f"task {task_id}: failure" not in log.read_text()  # a stop is not a failure
    assert (cancelled["status"], cancelled["is_syncing"]) == ("cancelled", False)
    assert (history["status"], history["finished_at"] is not None) == ("cancelled", True)
    assert not again["reused"] and again["task_id"] != task_id
    assert running["status"] == "running"


def test_full_clicks_during_an_incremental_queue_one_full_sync_that_runs_after_it(
    database_url: str, kafka_bootstrap: str
) -> None:
    user = random_user("queue")
    with running_stack(
        database_url,
        kafka_bootstrap,
        components=(*PIPELINE, "work"),
        demo_messages="200",  # incremental: 100 messages, full: 200, at 50/s
        demo_pace="50",
    ) as stack:
        warm_up(stack)
        incremental = click(stack, user)
        url = f"{stack.api.base_url}/sync/smart?force_full=true"
        with ThreadPoolExecutor(10) as pool:
            answers = list(
                pool.map(lambda _: httpx.post(url, headers=stack.api.headers(user)), range(20))
            )
        assert {a.status_code for a in answers} == {202}
        assert {a.json()["outcome"] for a in answers} == {"queued"}
        seen = watch_until(
            stack,
            user,
            lambda s: s["task_id"] != incremental["task_id"] and s["status"] == "completed",
        )
        tasks = httpx.get(
            f"{stack.api.base_url}/sync/tasks", headers=stack.api.headers(user)
        ).json()["tasks"]
        metrics = httpx.get(f"{stack.api.base_url}/metrics").text
    assert 'sync_commands_total{command="start",outcome="queued"} 20.0' in metrics
    queued = [s for s in seen if s["task_id"] == incremental["task_id"]]
    assert any(s["full_sync_queued"] for s in queued)
    assert [(t["sync_type"], t["status"], t["start_reason"]) for t in tasks] == [
        ("full", "completed", "queued_full_sync"),
        ("incremental", "completed", "first_click"),
    ]
    assert seen[-1]["current_stats"] == {"imported": 200, "total": 200}
    events = event_types(database_url, user)
    assert events.count("FullSyncQueued") == 1
    assert events.count("SyncStarted") == 2
    assert events.index("SyncStarted", 1) == events.index("SyncCompleted") + 1


def event_types(database_url: str, user: str) -> list[str]:
    engine = make_engine(database_url, pool_size=1)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT event_type FROM events WHERE stream_id = :s ORDER BY version"),
                {"s": f"UserSync-{user}"},
            ).all()
    finally:
        engine.dispose()
    return [row[0] for row in rows]
