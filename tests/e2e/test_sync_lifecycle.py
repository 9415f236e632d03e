"""A click becomes a sync that runs, reports, finishes and shows up in the views."""

from __future__ import annotations

import signal
import time
from typing import Any

import httpx

from tests.e2e.stack import Stack, running_stack
from tests.support.random_refs import random_user

EVERYTHING = ("relay", "project", "work", "reap")
ENDED = ("completed", "failed", "expired")


def click(stack: Stack, user: str) -> dict[str, Any]:
    answer = httpx.post(f"{stack.api.base_url}/sync/smart", headers=stack.api.headers(user))
    assert answer.status_code == 202, answer.text
    body: dict[str, Any] = answer.json()
    return body


def status(stack: Stack, user: str, min_version: int = 0) -> dict[str, Any]:
    answer = httpx.get(
        f"{stack.api.base_url}/sync/status",
        params={"min_version": min_version},
        headers=stack.api.headers(user),
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def watch_until(stack: Stack, user: str, done: Any, timeout: float = 60) -> list[dict[str, Any]]:
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen.append(status(stack, user))
        if done(seen[-1]):
            return seen
        time.sleep(0.1)
    raise AssertionError(f"not done in {timeout}s; last status {seen[-1] if seen else None}")


def warm_up(stack: Stack, timeout: float = 90) -> None:
    """Consumer groups join slowly on Tansu: wait until a worker reports progress on a task.

    A warm-up task can expire before the worker has joined (short test leases on a busy
    machine), so a new one is started until one of them shows progress.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        user = random_user("warm-up")
        click(stack, user)
        last = watch_until(
            stack, user, lambda s: s["progress_percentage"] > 0 or s["status"] in ENDED
        )[-1]
        if last["progress_percentage"] > 0:
            return
    raise AssertionError(f"no worker reported progress within {timeout}s")


def test_click_runs_to_completion_with_progress_on_the_way(
    database_url: str, kafka_bootstrap: str
) -> None:
    user = random_user()
    with running_stack(
        database_url, kafka_bootstrap, components=EVERYTHING, demo_messages="60", demo_pace="30"
    ) as stack:
        warm_up(stack)  # the projector's group join can outlast the status call's wait
        started = click(stack, user)
        first = status(stack, user, min_version=started["version"])
        assert first["caught_up"] and first["task_id"] == started["task_id"]
        seen = watch_until(stack, user, lambda s: s["status"] == "completed")
        tasks = httpx.get(
            f"{stack.api.base_url}/sync/tasks", headers=stack.api.headers(user)
        ).json()["tasks"]
        other = httpx.get(
            f"{stack.api.base_url}/sync/tasks/{started['task_id']}",
            headers=stack.api.headers(random_user()),
        )
        metrics = httpx.get(f"{stack.api.base_url}/metrics").text
    progress = [s["progress_percentage"] for s in seen if s["status"] == "running"]
    assert any(0 < p < 100 for p in progress), progress
    assert progress == sorted(progress)
    final = seen[-1]
    assert not final["is_syncing"] and final["progress_percentage"] == 100
    assert final["current_stats"] == {"imported": 30, "total": 30}  # incremental: half of 60
    assert [(t["task_id"], t["status"]) for t in tasks] == [(started["task_id"], "completed")]
    assert other.status_code == 404
    assert 'sync_commands_total{command="start",outcome="started"}' in metrics
    assert 'sync_commands_total{command="complete",outcome="completed"}' in metrics


def test_killed_worker_is_reaped_replaced_and_fenced(
    database_url: str, kafka_bootstrap: str
) -> None:
    user = random_user()
    with running_stack(
        database_url,
        kafka_bootstrap,
        components=EVERYTHING,
        reuse_window_seconds="3",
        reaper_interval_seconds="0.5",
        demo_messages="1000",
        demo_pace="20",
    ) as stack:
        warm_up(stack)
        old = click(stack, user)
        watch_until(stack, user, lambda s: s["progress_percentage"] > 0)
        stack.processes["work"].send_signal(signal.SIGKILL)
        stack.processes["work"].wait()
        reaped = watch_until(stack, user, lambda s: s["status"] == "expired", timeout=30)[-1]
        assert reaped["task_id"] == old["task_id"] and not reaped["is_syncing"]
        new = click(stack, user)
        assert not new["reused"] and new["task_id"] != old["task_id"]
        late = httpx.post(
            f"{stack.api.base_url}/sync/tasks/{old['task_id']}/progress",
            json={"percent": 50, "stats": {}},
            headers={"Authorization": f"Bearer {report_token(user)}"},
        )
    assert late.status_code == 409 and late.json()["task_id"] == old["task_id"]


def test_progress_past_the_window_keeps_the_task_live(
    database_url: str, kafka_bootstrap: str
) -> None:
    user = random_user()
    with running_stack(
        database_url,
        kafka_bootstrap,
        components=EVERYTHING,
        reuse_window_seconds="3",
        reaper_interval_seconds="0.5",
        demo_messages="300",
        demo_pace="20",  # incremental: 150 messages, 7.5 s, reporting every 0.5 s
    ) as stack:
        warm_up(stack)
        first = click(stack, user)
        time.sleep(4.5)  # well past the 3 s window from the start
        again = click(stack, user)
        final = watch_until(stack, user, lambda s: s["status"] != "running")[-1]
    assert again["task_id"] == first["task_id"], (first, again)
    assert again["reused"] and again["lease_expires_at"] > first["lease_expires_at"]
    assert final["status"] == "completed" and final["task_id"] == first["task_id"], final


def test_sigterm_lets_the_running_sync_finish_within_grace(
    database_url: str, kafka_bootstrap: str
) -> None:
    user = random_user()
    with running_stack(
        database_url,
        kafka_bootstrap,
        components=EVERYTHING,
        demo_messages="120",
        demo_pace="40",
        worker_grace_seconds="20",  # incremental: 60 messages, 1.5 s
    ) as stack:
        warm_up(stack)
        click(stack, user)
        watch_until(stack, user, lambda s: s["progress_percentage"] > 0)
        worker = stack.processes["work"]
        worker.send_signal(signal.SIGTERM)
        final = watch_until(stack, user, lambda s: s["status"] != "running")[-1]
        assert worker.wait(30) == 0
    assert final["status"] == "completed", final


def test_sync_outliving_the_grace_is_reported_failed(
    database_url: str, kafka_bootstrap: str
) -> None:
    user = random_user()
    with running_stack(
        database_url,
        kafka_bootstrap,
        components=EVERYTHING,
        demo_messages="2000",
        demo_pace="40",
        worker_grace_seconds="0.5",
    ) as stack:
        warm_up(stack)
        click(stack, user)
        watch_until(stack, user, lambda s: s["progress_percentage"] > 0)
        stack.processes["work"].send_signal(signal.SIGTERM)
        final = watch_until(stack, user, lambda s: s["status"] != "running")[-1]
        assert stack.processes["work"].wait(30) == 0
    assert final["status"] == "failed" and "shut down" in final["error_message"], final


def report_token(user: str) -> str:
    from coordinator.api.auth.tokens import issue_token
    from core.report_scope import REPORT_SCOPE
    from tests.e2e.processes import SECRET

    return issue_token(user, SECRET, 60, scope=REPORT_SCOPE)
