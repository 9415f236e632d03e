"""Stop and the queued full sync over the real API against real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from core.report_scope import REPORT_SCOPE
from tests.integration.app_harness import bearer, events_of, running_app, settings_for, user_token
from tests.support.random_refs import random_user

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def client(shared_database_url: str) -> Iterator[TestClient]:
    with running_app(settings_for(shared_database_url)) as client:
        yield client


def click(client: TestClient, user: str, force_full: bool = False) -> dict[str, object]:
    params = {"force_full": "true"} if force_full else {}
    answer = client.post("/sync/smart", params=params, headers=bearer(user_token(user)))
    assert answer.status_code == 202, answer.text
    body: dict[str, object] = answer.json()
    return body


def cancel(client: TestClient, user: str, task_id: object) -> tuple[int, dict[str, object]]:
    answer = client.post(f"/sync/tasks/{task_id}/cancel", headers=bearer(user_token(user)))
    if answer.status_code >= 400:
        assert answer.headers["content-type"] == PROBLEM
    return answer.status_code, answer.json()


def report(client: TestClient, user: str, task_id: object, what: str) -> int:
    headers = bearer(user_token(user, scope=REPORT_SCOPE))
    body: dict[str, Any] = {"stats": {}} if what == "complete" else {"percent": 10.0}
    answer = client.post(f"/sync/tasks/{task_id}/{what}", json=body, headers=headers)
    return int(answer.status_code)


def test_owner_cancels_then_reports_are_fenced_and_the_next_click_starts_anew(
    client: TestClient, engine: Engine
) -> None:
    user = random_user("cancel")
    first = click(client, user)
    assert first["outcome"] == "started" and first["full_sync_queued"] is False
    status, body = cancel(client, user, first["task_id"])
    assert status == 202
    assert body == {"task_id": first["task_id"], "status": "cancelled", "version": 3}
    assert events_of(engine, user) == ["SyncStarted", "CancelRequested", "SyncCancelled"]
    assert report(client, user, first["task_id"], "progress") == 409
    second = click(client, user)
    assert second["outcome"] == "started" and second["task_id"] != first["task_id"]


def test_another_users_or_an_unknown_task_is_not_found(client: TestClient, engine: Engine) -> None:
    owner, other = random_user("owner"), random_user("other")
    task_id = click(client, owner)["task_id"]
    for user, task in ((other, task_id), (owner, "sync_" + "0" * 32)):
        status, body = cancel(client, user, task)
        assert status == 404 and body["type"] == "urn:sync-coordinator:problem:task-not-found"
    assert events_of(engine, owner) == ["SyncStarted"]
    assert events_of(engine, other) == []


def test_cancel_of_an_ended_task_is_a_conflict_that_says_how_it_ended(
    client: TestClient, engine: Engine
) -> None:
    user = random_user("ended")
    done = click(client, user)["task_id"]
    assert report(client, user, done, "complete") == 200
    status, body = cancel(client, user, done)
    assert (status, body["reason"], body["task_id"]) == (409, "completed", done)
    cancelled = click(client, user)["task_id"]
    assert cancel(client, user, cancelled)[0] == 202
    click(client, user)  # a newer task: the cancelled one is only in the stream now
    for task, how in ((cancelled, "cancelled"), (done, "completed")):
        status, body = cancel(client, user, task)
        assert (status, body["reason"]) == (409, how)
        assert body["type"] == "urn:sync-coordinator:problem:task-ended"


def test_many_full_clicks_during_an_incremental_queue_one_full_sync(
    client: TestClient, engine: Engine
) -> None:
    user = random_user("queue")
    running = click(client, user)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: click(client, user, force_full=True), range(20)))
    assert {a["outcome"] for a in answers} == {"queued"}
    assert all(a["reused"] and a["full_sync_queued"] for a in answers)
    assert {a["task_id"] for a in answers} == {running["task_id"]}
    assert events_of(engine, user).count("FullSyncQueued") == 1
    joined = click(client, user)
    assert (joined["outcome"], joined["full_sync_queued"]) == ("joined", True)
    headers = bearer(user_token(user, scope=REPORT_SCOPE))
    done = client.post(f"/sync/tasks/{running['task_id']}/complete", json={}, headers=headers)
    assert done.status_code == 200
    assert (done.json()["task_id"], done.json()["status"]) == (running["task_id"], "completed")
    history = events_of(engine, user)
    assert history[-2:] == ["SyncCompleted", "SyncStarted"]
    assert history.count("SyncStarted") == 2  # the first task and the queued full sync
    follow_up = click(client, user)
    assert (follow_up["outcome"], follow_up["sync_type"]) == ("joined", "full")
    assert follow_up["task_id"] != running["task_id"] and not follow_up["full_sync_queued"]
    with engine.connect() as conn:
        data = conn.execute(
            text(
                "SELECT schema_version, data FROM events WHERE stream_id = :s "
                "AND event_type = 'SyncStarted' ORDER BY version DESC LIMIT 1"
            ),
            {"s": f"UserSync-{user}"},
        ).one()
    assert data[0] == 2
    assert (data[1]["reason"], data[1]["requested_by"]) == ("queued_full_sync", "testclient")
