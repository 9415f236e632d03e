"""Each row of issue 8's table, and the other probes, answer a 4xx problem document."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from coordinator.service.ports import QueueFull
from core.report_scope import REPORT_SCOPE
from tests.integration.app_harness import (
    bearer,
    events_of,
    hs256,
    running_app,
    settings_for,
    user_token,
)
from tests.support.random_refs import random_user

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def client(shared_database_url: str) -> Iterator[TestClient]:
    with running_app(settings_for(shared_database_url)) as client:
        yield client


def started_task(client: TestClient, user: str) -> str:
    answer = client.post("/sync/smart", headers=bearer(user_token(user)))
    assert answer.status_code == 202
    task_id: str = answer.json()["task_id"]
    return task_id


def report_headers(user: str) -> dict[str, str]:
    return bearer(user_token(user, scope=REPORT_SCOPE))


def assert_problem(answer: object, status: int) -> dict[str, object]:
    from httpx import Response

    assert isinstance(answer, Response)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == PROBLEM
    body: dict[str, object] = answer.json()
    assert body["status"] == status and body["title"] and body["detail"]
    assert body["instance"] == answer.request.url.raw_path.decode().split("?")[0]
    return body


def test_row1_megabyte_stats_is_refused_before_anything_is_stored(
    client: TestClient, engine: Engine
) -> None:
    user = random_user()
    task_id = started_task(client, user)
    huge = {"stats": {"blob": "x" * 1_000_000}}
    answer = client.post(f"/sync/tasks/{task_id}/complete", json=huge, headers=report_headers(user))
    assert_problem(answer, 413)
    over_stats_limit = {"stats": {f"k{i}": "y" * 900 for i in range(30)}}  # 27 KB: body fits
    answer = client.post(
        f"/sync/tasks/{task_id}/progress",
        json={"percent": 5, **over_stats_limit},
        headers=report_headers(user),
    )
    assert "16384" in str(assert_problem(answer, 422)["detail"])
    assert events_of(engine, user) == ["SyncStarted"]


def test_chunked_body_over_the_limit_is_refused_without_content_length(
    client: TestClient, engine: Engine
) -> None:
    user = random_user()
    task_id = started_task(client, user)

    def chunks() -> Iterator[bytes]:
        yield b'{"stats": {"a": "'
        for _ in range(80):
            yield b"z" * 1024
        yield b'"}}'

    answer = client.post(
        f"/sync/tasks/{task_id}/complete",
        content=chunks(),
        headers={**report_headers(user), "Content-Type": "application/json"},
    )
    assert_problem(answer, 413)
    assert events_of(engine, user) == ["SyncStarted"]


@pytest.mark.parametrize(
    ("sub", "row"), [("bad\x00user", 2), ("lone\ud800surrogate", 3), ("tab\tuser", 0)]
)
def test_rows2_3_unprintable_sub_is_a_401(client: TestClient, sub: str, row: int) -> None:
    token = hs256({"sub": sub, "exp": int(time.time()) + 60})
    answer = client.post("/sync/smart", headers=bearer(token))
    body = assert_problem(answer, 401)
    assert body["reason"] == "subject"
    assert answer.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
def test_row4_numeric_string_dates_are_refused(client: TestClient, claim: str) -> None:
    claims = {"sub": random_user(), "exp": int(time.time()) + 60}
    claims[claim] = str(int(time.time()) + (60 if claim == "exp" else -60))
    answer = client.post("/sync/smart", headers=bearer(hs256(claims)))
    body = assert_problem(answer, 401)
    assert body["reason"] == "claim_type" and claim in str(body["detail"])


def test_non_finite_exp_is_refused(client: TestClient) -> None:
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=").decode()
    payload = base64.urlsafe_b64encode(b'{"sub":"u","exp":1e999}').rstrip(b"=").decode()
    token = f"{header}.{payload}.c2ln"
    assert assert_problem(client.get("/sync/status", headers=bearer(token)), 401)["reason"] == (
        "claim_type"
    )


def test_row5_nul_in_a_task_id_path_is_a_422(client: TestClient) -> None:
    answer = client.get("/sync/tasks/a%00b", headers=bearer(user_token(random_user())))
    assert_problem(answer, 422)
    unknown = client.get("/sync/tasks/sync_nothing", headers=bearer(user_token(random_user())))
    assert_problem(unknown, 404)


def test_row6_cursor_carrying_nul_is_a_422(client: TestClient) -> None:
    cursor = base64.urlsafe_b64encode(b"2024-01-01T00:00:00+00:00|a\x00b").decode()
    answer = client.get(f"/sync/tasks?cursor={cursor}", headers=bearer(user_token(random_user())))
    assert "cursor" in str(assert_problem(answer, 422)["detail"])
    too_long = client.get("/sync/tasks?cursor=" + "A" * 201, headers=bearer(user_token("u")))
    assert_problem(too_long, 422)


@pytest.mark.parametrize(
    "raw",
    [b'{"percent": NaN}', b'{"percent": Infinity}', b'{"percent": 5, "stats": {"a": -Infinity}}'],
)
def test_row7_non_finite_numbers_are_a_422(client: TestClient, engine: Engine, raw: bytes) -> None:
    user = random_user()
    task_id = started_task(client, user)
    answer = client.post(
        f"/sync/tasks/{task_id}/progress",
        content=raw,
        headers={**report_headers(user), "Content-Type": "application/json"},
    )
    body = assert_problem(answer, 422)
    assert isinstance(body["errors"], list) and body["errors"]
    assert events_of(engine, user) == ["SyncStarted"]


def test_row8_validation_errors_have_the_declared_shape(client: TestClient) -> None:
    answer = client.get("/sync/tasks?limit=banana", headers=bearer(user_token(random_user())))
    body = assert_problem(answer, 422)
    assert body["errors"] == [
        {
            "loc": ["query", "limit"],
            "msg": "Input should be a valid integer, unable to parse string as an integer",
            "type": "int_parsing",
        }
    ]
    declared = client.get("/openapi.json").json()["paths"]["/sync/tasks"]["get"]["responses"]
    assert declared["422"]["content"] == {
        PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}
    }


def test_row8_huge_invalid_input_is_not_echoed(client: TestClient) -> None:
    user = random_user()
    task_id = started_task(client, user)
    answer = client.post(
        f"/sync/tasks/{task_id}/fail", json={"error": "e" * 60_000}, headers=report_headers(user)
    )
    assert_problem(answer, 422)
    assert len(answer.content) < 2000


def test_row9_body_that_is_not_utf8_is_a_declared_400(client: TestClient) -> None:
    user = random_user()
    task_id = started_task(client, user)
    answer = client.post(
        f"/sync/tasks/{task_id}/progress",
        content=b'{"percent": 5, "stats": {"a": "\xff\xfe"}}',
        headers={**report_headers(user), "Content-Type": "application/json"},
    )
    assert_problem(answer, 400)
    operation = client.get("/openapi.json").json()["paths"]["/sync/tasks/{task_id}/progress"]
    assert "400" in operation["post"]["responses"]


@pytest.mark.parametrize("percent", [False, True, "50", 100.5, -1])
def test_row10_percent_is_a_real_number_in_range(client: TestClient, percent: object) -> None:
    user = random_user()
    task_id = started_task(client, user)
    answer = client.post(
        f"/sync/tasks/{task_id}/progress", json={"percent": percent}, headers=report_headers(user)
    )
    assert_problem(answer, 422)
    fine = client.post(
        f"/sync/tasks/{task_id}/progress", json={"percent": 50}, headers=report_headers(user)
    )
    assert fine.status_code == 200 and fine.json()["status"] == "running"


def test_nul_in_stats_and_error_text_is_a_422(client: TestClient, engine: Engine) -> None:
    user = random_user()
    task_id = started_task(client, user)
    for path, body in [
        ("progress", {"percent": 1, "stats": {"a\x00": 1}}),
        ("complete", {"stats": {"nested": {"x": "bad\x00"}}}),
        ("fail", {"error": "bad\x00"}),
        ("fail", {"error": "lone \ud800"}),
    ]:
        answer = client.post(
            f"/sync/tasks/{task_id}/{path}",
            content=json.dumps(body).encode(),
            headers={**report_headers(user), "Content-Type": "application/json"},
        )
        assert_problem(answer, 422)
    assert events_of(engine, user) == ["SyncStarted"]


def test_body_on_smart_sync_over_the_small_limit_is_a_413(client: TestClient) -> None:
    user = random_user()
    answer = client.post("/sync/smart", content=b"x" * 1_000_000, headers=bearer(user_token(user)))
    assert_problem(answer, 413)


def test_oversized_jose_header_and_token_are_refused(client: TestClient) -> None:
    claims = {"sub": random_user(), "exp": int(time.time()) + 60}
    big_header = hs256(claims, headers={"pad": "p" * 12_000})
    answer = client.post("/sync/smart", headers=bearer(big_header))
    assert assert_problem(answer, 401)["reason"] in {"malformed", "too_large"}
    big_claims = hs256({**claims, "pad": "p" * 9000})
    assert (
        assert_problem(client.post("/sync/smart", headers=bearer(big_claims)), 401)["reason"]
        == "too_large"
    )


def test_missing_token_challenge_has_no_error_code(client: TestClient) -> None:
    answer = client.get("/sync/status")
    assert assert_problem(answer, 401)["reason"] == "missing"
    assert answer.headers["WWW-Authenticate"] == "Bearer"


def test_report_without_scope_is_a_403_insufficient_scope(client: TestClient) -> None:
    user = random_user()
    task_id = started_task(client, user)
    answer = client.post(
        f"/sync/tasks/{task_id}/progress", json={"percent": 1}, headers=bearer(user_token(user))
    )
    assert assert_problem(answer, 403)["reason"] == "scope"
    assert 'error="insufficient_scope"' in answer.headers["WWW-Authenticate"]


def test_fenced_report_is_a_409_problem_with_task_and_reason(client: TestClient) -> None:
    user = random_user()
    started_task(client, user)
    answer = client.post(
        "/sync/tasks/sync_not_live/progress", json={"percent": 1}, headers=report_headers(user)
    )
    body = assert_problem(answer, 409)
    assert body["task_id"] == "sync_not_live" and body["reason"]


def test_unexpected_error_is_a_500_problem_logged_with_correlation_id(
    shared_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from coordinator.api.app import create_app

    app = create_app(settings_for(shared_database_url))

    async def boom() -> None:
        raise RuntimeError("kaboom")

    async def full() -> None:
        raise QueueFull("too many clicks waiting for this user", retry_after=2)

    app.add_api_route("/boom", boom)
    app.add_api_route("/full", full)
    with caplog.at_level(logging.ERROR), TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/boom", headers={"X-Request-ID": "req-123"})
        queued = client.get("/full")
    body = assert_problem(answer, 500)
    assert body["correlation_id"] == "req-123" and "kaboom" not in answer.text
    assert any("req-123" in r.getMessage() and r.exc_info for r in caplog.records)
    assert assert_problem(queued, 429)["detail"] == "too many clicks waiting for this user"
    assert queued.headers["Retry-After"] == "2"


def test_database_down_is_a_503_problem_with_retry_after() -> None:
    from coordinator.dev.embedded import free_port

    url = f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none?connect_timeout=1"
    with running_app(settings_for(url, retry_after_seconds=7)) as client:
        ready = client.get("/readyz")
        status = client.get("/sync/status", headers=bearer(user_token(random_user())))
    for answer in (ready, status):
        assert_problem(answer, 503)
        assert answer.headers["Retry-After"] == "7"
