"""Stop and the queued full sync with every process running: the worker obeys both."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.e2e.stack import Stack, running_stack
from tests.e2e.test_sync_lifecycle import click, status, warm_up, watch_until
from tests.random_refs import random_user

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
