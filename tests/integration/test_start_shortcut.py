"""A plain click is answered before the router, alike to the route's answer; odd ones reach it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.testclient import TestClient

from coordinator.api.deps import bearer
from tests.integration.app_harness import bearer as bearer_header
from tests.integration.app_harness import running_app, settings_for, user_token
from tests.support.random_refs import random_user

# FastAPI ignores a query parameter it does not declare; the shortcut leaves such a click to
# the route, so the same click can be sent either way.
VIA_ROUTE = "/sync/smart?force_full=false&via=route"


class RouteCalls:
    """Counts the requests that reached a route taking a bearer token (here: /sync/smart)."""

    def __init__(self, app: FastAPI) -> None:
        self.count = 0

        async def counted(request: Request) -> HTTPAuthorizationCredentials | None:
            self.count += 1
            return await bearer(request)

        app.dependency_overrides[bearer] = counted


@pytest.fixture(scope="module")
def client(shared_database_url: str) -> Iterator[TestClient]:
    with running_app(settings_for(shared_database_url)) as client:
        yield client


@pytest.fixture
def route_calls(client: TestClient) -> Iterator[RouteCalls]:
    assert isinstance(client.app, FastAPI)
    yield RouteCalls(client.app)
    client.app.dependency_overrides.clear()


@pytest.mark.parametrize(
    "path", ["/sync/smart", "/sync/smart?force_full=false", "/sync/smart?force_full=True"]
)
def test_a_plain_click_does_not_reach_the_route(
    client: TestClient, route_calls: RouteCalls, path: str
) -> None:
    headers = {
        **bearer_header(user_token(random_user())),
        "Idempotency-Key": "k-1",
        "User-Agent": "a",
    }
    answer = client.post(path, headers=headers)
    assert answer.status_code == 202, answer.text
    assert route_calls.count == 0


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        (VIA_ROUTE, {}, 202),
        ("/sync/smart?force_full=maybe", {}, 422),
        ("/sync/smart?force_full=", {}, 422),
        ("/sync/smart", {"Idempotency-Key": ""}, 422),
        ("/sync/smart", {"Idempotency-Key": "a b"}, 422),
        ("/sync/smart", {"X-Request-ID": "x" * 201}, 422),
        ("/sync/smart", {"Authorization": "Bearer not-a-token"}, 401),
        ("/sync/smart", {"Authorization": "Basic dTpw"}, 401),
    ],
)
def test_every_other_click_is_answered_by_the_route(
    client: TestClient, route_calls: RouteCalls, path: str, headers: dict[str, str], status: int
) -> None:
    sent = {**bearer_header(user_token(random_user())), **headers}
    answer = client.post(path, headers=sent)
    assert answer.status_code == status, answer.text
    assert route_calls.count == 1


def test_both_ways_answer_alike(client: TestClient, route_calls: RouteCalls) -> None:
    headers = bearer_header(user_token(random_user()))
    first = client.post("/sync/smart", headers=headers)
    second = client.post(VIA_ROUTE, headers=headers)
    assert route_calls.count == 1
    assert first.status_code == second.status_code == 202
    assert first.headers["content-type"] == second.headers["content-type"]
    one, two = first.json(), second.json()
    assert list(one) == list(two)
    assert (one["outcome"], two["outcome"]) == ("started", "joined")
    assert two["task_id"] == one["task_id"] and two["version"] == one["version"] + 1
    unchanged = ("started_at", "lease_expires_at", "sync_type", "success", "in_progress")
    assert {k: one[k] for k in unchanged} == {k: two[k] for k in unchanged}


def test_an_idempotency_key_replays_the_same_answer_either_way(
    client: TestClient, route_calls: RouteCalls
) -> None:
    headers = {**bearer_header(user_token(random_user())), "Idempotency-Key": "same-click"}
    first = client.post("/sync/smart", headers=headers)
    again = client.post(VIA_ROUTE, headers=headers)
    once_more = client.post("/sync/smart", headers=headers)
    assert route_calls.count == 1
    assert first.status_code == again.status_code == once_more.status_code == 202
    assert first.json() == again.json() == once_more.json()
