"""One user's click storm over HTTP: coalesced, bounded, and tidy when clients walk away."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import httpx
from sqlalchemy import Engine

from tests.e2e.conftest import started_count
from tests.e2e.processes import Api, running_api
from tests.e2e.test_start_over_http import click_concurrently
from tests.support.random_refs import random_user
from tests.support.stream_locks import row_locked

# The held row lock must outlast the test, not end it with a 503.
PATIENT: dict[str, Any] = {"lock_timeout_ms": "20000"}


def metric(api: Api, name: str) -> float:
    """The sum of a metric's samples on /metrics (0 when absent)."""
    text = httpx.get(f"{api.base_url}/metrics").text
    pattern = rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$"
    return sum(float(v) for v in re.findall(pattern, text, flags=re.M))


def test_storm_over_two_api_processes_makes_one_task_and_an_event_per_click(
    shared_database_url: str, engine: Engine
) -> None:
    user = random_user("storm")
    with running_api(shared_database_url) as first, running_api(shared_database_url) as second:
        clicks = [(first.base_url, first.headers(user))] * 100
        clicks += [(second.base_url, second.headers(user))] * 100
        answers = asyncio.run(click_concurrently(clicks))
        batches = [metric(api, "sync_command_batch_size_count") for api in (first, second)]
        commands = [metric(api, "sync_command_batch_size_sum") for api in (first, second)]
    assert [a.status_code for a in answers] == [202] * 200
    assert len({a.json()["task_id"] for a in answers}) == 1
    assert sorted(a.json()["version"] for a in answers) == list(range(1, 201))
    assert started_count(engine, user) == {"SyncStarted": 1, "SyncReused": 199}
    assert commands == [100, 100]
    assert sum(batches) < 200, "clicks that waited together were taken in one transaction"


def test_an_over_full_queue_answers_429_with_retry_after(
    shared_database_url: str, engine: Engine
) -> None:
    user = random_user("full")
    with running_api(shared_database_url, command_queue_limit="3", **PATIENT) as api:
        url = f"{api.base_url}/sync/smart"
        assert httpx.post(url, headers=api.headers(user)).status_code == 202

        async def storm() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=60) as client:
                taken = asyncio.ensure_future(client.post(url, headers=api.headers(user)))
                await asyncio.sleep(0.5)  # in a transaction, waiting on the held lock
                rest = [client.post(url, headers=api.headers(user)) for _ in range(9)]
                more = asyncio.ensure_future(asyncio.gather(*rest))
                await asyncio.sleep(1.0)
                release.set()
                return [await taken, *await more]

        with row_locked(engine, user) as release:
            answers = asyncio.run(storm())
    codes = sorted(a.status_code for a in answers)
    assert codes == [202] * 4 + [429] * 6
    refused = next(a for a in answers if a.status_code == 429)
    assert int(refused.headers["Retry-After"]) >= 1
    assert "wait" in refused.text
    assert started_count(engine, user) == {"SyncStarted": 1, "SyncReused": 4}


def test_clients_that_leave_mid_batch_leave_no_orphans(
    shared_database_url: str, engine: Engine
) -> None:
    user = random_user("gone")
    with running_api(shared_database_url, **PATIENT) as api:
        url = f"{api.base_url}/sync/smart"
        assert httpx.post(url, headers=api.headers(user)).status_code == 202

        async def storm() -> tuple[list[httpx.Response], float, float]:
            async with httpx.AsyncClient(timeout=60) as patient:
                taken = asyncio.ensure_future(patient.post(url, headers=api.headers(user)))
                await asyncio.sleep(0.5)

                async def impatient() -> None:
                    async with httpx.AsyncClient(timeout=0.5) as client:
                        try:
                            await client.post(url, headers=api.headers(user))
                        except httpx.TimeoutException:
                            return
                        raise AssertionError("answered while the row was locked")

                await asyncio.gather(*(impatient() for _ in range(20)))
                stay = [patient.post(url, headers=api.headers(user)) for _ in range(3)]
                staying = asyncio.ensure_future(asyncio.gather(*stay))
                await asyncio.sleep(0.5)
                depth = await asyncio.to_thread(metric, api, "sync_command_queue_depth")
                release.set()
                answers = [await taken, *await staying]
                await asyncio.sleep(0.2)
                after = await asyncio.to_thread(metric, api, "sync_command_queue_depth")
                return answers, depth, after

        with row_locked(engine, user) as release:
            answers, depth, after = asyncio.run(storm())
        deadline = time.monotonic() + 5
        while metric(api, 'sync_commands_total{command="start",outcome="abandoned"}') < 20:
            assert time.monotonic() < deadline, "the abandoned clicks were not all counted"
            time.sleep(0.1)
    assert [a.status_code for a in answers] == [202] * 4
    assert depth == 3 and after == 0
    assert sorted(a.json()["version"] for a in answers) == [2, 3, 4, 5]
    assert started_count(engine, user) == {"SyncStarted": 1, "SyncReused": 4}


def test_a_users_requests_beyond_the_active_bound_wait_and_hold_back_nobody_else(
    shared_database_url: str, engine: Engine
) -> None:
    user, neighbour = random_user("gate"), random_user("neighbour")
    settings = {"user_active_requests": "2", "command_queue_limit": "3", **PATIENT}
    settings["user_active_requests_alone"] = "2"  # the same bound with the user alone
    with running_api(shared_database_url, **settings) as api:
        url, headers = f"{api.base_url}/sync/smart", api.headers(user)  # one token, verified
        assert httpx.post(url, headers=headers).status_code == 202  # ... and now known

        async def storm() -> tuple[list[httpx.Response], float, httpx.Response, httpx.Response]:
            async with httpx.AsyncClient(timeout=60) as client:
                clicks = [
                    asyncio.ensure_future(client.post(url, headers=headers)) for _ in range(5)
                ]
                await asyncio.sleep(1.0)  # 1 in a transaction on the held row, 1 queued, 3 held
                held = await asyncio.to_thread(metric, api, "sync_requests_held")
                other = await client.post(url, headers=api.headers(neighbour))
                refused = await client.post(url, headers=headers)
                release.set()
                return list(await asyncio.gather(*clicks)), held, other, refused

        with row_locked(engine, user) as release:
            answers, held, other, refused = asyncio.run(storm())
        turned_away = metric(api, "sync_requests_turned_away_total")
    assert held == 3
    assert other.status_code == 202, "a neighbour is answered while the user's row is locked"
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert "wait in this process" in refused.json()["detail"] and turned_away == 1
    assert [a.status_code for a in answers] == [202] * 5
    assert sorted(a.json()["version"] for a in answers) == [2, 3, 4, 5, 6]
