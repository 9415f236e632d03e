"""The start endpoint over HTTP against `syncctl api` subprocesses and real PostgreSQL."""

from __future__ import annotations

import asyncio
import time

import httpx
import jwt
from sqlalchemy import Engine

from tests.e2e.conftest import started_count
from tests.e2e.processes import SECRET, Api, running_api
from tests.support.command_loop import command_store, run
from tests.support.random_refs import random_user


async def click_concurrently(
    clicks: list[tuple[str, dict[str, str]]], force_full: bool = False
) -> list[httpx.Response]:
    """POST every (base_url, headers) at once."""
    limits = httpx.Limits(max_connections=len(clicks))
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        return await asyncio.gather(
            *(
                client.post(
                    f"{base}/sync/smart", params={"force_full": force_full}, headers=headers
                )
                for base, headers in clicks
            )
        )


def test_repeated_clicks_reuse_the_live_task(api: Api, engine: Engine) -> None:
    user = random_user()
    answers = [
        httpx.post(f"{api.base_url}/sync/smart", headers=api.headers(user)) for _ in range(4)
    ]
    assert all(a.status_code == 202 for a in answers)
    bodies = [a.json() for a in answers]
    assert len({b["task_id"] for b in bodies}) == 1
    assert [b["reused"] for b in bodies] == [False, True, True, True]
    assert [b["version"] for b in bodies] == [1, 2, 3, 4]
    assert all(b["success"] and b["in_progress"] and b["stats"] == {} for b in bodies)
    assert started_count(engine, user) == {"SyncStarted": 1, "SyncReused": 3}


def test_full_requested_during_incremental_says_what_runs(api: Api) -> None:
    user = random_user()
    httpx.post(f"{api.base_url}/sync/smart", headers=api.headers(user))
    body = httpx.post(
        f"{api.base_url}/sync/smart?force_full=true", headers=api.headers(user)
    ).json()
    assert body["reused"] and body["sync_type"] == "incremental"
    assert (body["outcome"], body["full_sync_queued"]) == ("queued", True)


def test_200_concurrent_clicks_of_one_user_share_one_task(api: Api, engine: Engine) -> None:
    user = random_user()
    answers = asyncio.run(click_concurrently([(api.base_url, api.headers(user))] * 200))
    assert [a.status_code for a in answers] == [202] * 200
    assert len({a.json()["task_id"] for a in answers}) == 1
    assert sorted(a.json()["version"] for a in answers) == list(range(1, 201))
    assert started_count(engine, user) == {"SyncStarted": 1, "SyncReused": 199}


def test_50_users_20_clicks_each_start_50_tasks(api: Api, engine: Engine) -> None:
    users = [random_user() for _ in range(50)]
    clicks = [(api.base_url, api.headers(u)) for u in users for _ in range(20)]
    answers = asyncio.run(click_concurrently(clicks))
    assert {a.status_code for a in answers} == {202}
    tasks: dict[str, set[str]] = {}
    for (_, headers), answer in zip(clicks, answers, strict=True):
        tasks.setdefault(headers["Authorization"], set()).add(answer.json()["task_id"])
    assert all(len(ids) == 1 for ids in tasks.values())
    assert len({next(iter(ids)) for ids in tasks.values()}) == 50
    assert sum(started_count(engine, u).get("SyncStarted", 0) for u in users) == 50


def test_first_start_of_new_user_across_two_api_processes(
    api: Api, shared_database_url: str, engine: Engine
) -> None:
    user = random_user("brand-new")
    with running_api(shared_database_url) as second:
        clicks = [(api.base_url, api.headers(user)), (second.base_url, second.headers(user))] * 50
        answers = asyncio.run(click_concurrently(clicks))
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["task_id"] for a in answers}) == 1
    assert started_count(engine, user) == {"SyncStarted": 1, "SyncReused": 99}


def test_start_after_the_window_expires_the_old_task(
    shared_database_url: str, engine: Engine
) -> None:
    user = random_user()
    with running_api(shared_database_url, reuse_window_seconds="2") as api:
        first = httpx.post(f"{api.base_url}/sync/smart", headers=api.headers(user)).json()
        time.sleep(2.2)
        second = httpx.post(f"{api.base_url}/sync/smart", headers=api.headers(user)).json()
    assert not second["reused"] and second["task_id"] != first["task_id"]

    events = run(command_store(engine).read_stream(user))
    assert [e.event_type for e in events] == ["SyncStarted", "SyncExpired", "SyncStarted"]
    assert events[1].data.task_id == first["task_id"]
    assert events[2].data.replaces_task_id == first["task_id"]  # type: ignore[union-attr]


def test_idempotency_key_returns_first_response_even_after_the_task_ended(
    shared_database_url: str,
) -> None:
    user = random_user()
    with running_api(shared_database_url, reuse_window_seconds="1") as api:
        url = f"{api.base_url}/sync/smart"
        first = httpx.post(url, headers=api.headers(user, **{"Idempotency-Key": "k1"}))
        time.sleep(1.2)
        again = httpx.post(url, headers=api.headers(user, **{"Idempotency-Key": "k1"}))
        fresh = httpx.post(url, headers=api.headers(user))
        other = httpx.post(
            f"{url}?force_full=true", headers=api.headers(user, **{"Idempotency-Key": "k1"})
        )
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json() == first.json()
    assert fresh.json()["task_id"] != first.json()["task_id"]
    assert other.status_code == 422 and "Idempotency-Key" in other.json()["detail"]


def test_bad_input_is_refused_with_a_reason(api: Api) -> None:
    url = f"{api.base_url}/sync/smart"
    user = random_user()
    banana = httpx.post(f"{url}?force_full=banana", headers=api.headers(user))
    assert banana.status_code == 422
    expired = jwt.encode({"sub": user, "exp": int(time.time()) - 10}, SECRET, "HS256")
    foreign = jwt.encode(
        {"sub": user, "exp": int(time.time()) + 60},
        "another-secret-that-is-long-enough-for-hs256",
        "HS256",
    )
    no_exp = jwt.encode({"sub": user}, SECRET, "HS256")
    for token, reason in [(expired, "expired"), (foreign, "invalid"), (no_exp, "exp")]:
        answer = httpx.post(url, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401 and reason in answer.json()["detail"]
        assert answer.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
        assert answer.headers["Content-Type"] == "application/problem+json"
    for missing in ({}, {"Authorization": "Basic abc"}):
        answer = httpx.post(url, headers=missing)
        assert answer.status_code == 401 and answer.headers["WWW-Authenticate"] == "Bearer"


def test_hostile_user_id_is_just_an_id(api: Api, engine: Engine) -> None:
    user = f"'; drop table events; -- {random_user()}"
    answer = httpx.post(f"{api.base_url}/sync/smart", headers=api.headers(user))
    assert answer.status_code == 202
    assert started_count(engine, user) == {"SyncStarted": 1}


def test_health_and_openapi(api: Api) -> None:
    assert httpx.get(f"{api.base_url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{api.base_url}/readyz").status_code == 200
    assert "/sync/smart" in httpx.get(f"{api.base_url}/openapi.json").json()["paths"]
