"""No cache keeps a user's data and no browser sniffs a type: headers on every answer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response

from consumers.mail.password_box import new_key
from coordinator.api.app import REPORT_PATH, STREAM_PATH
from core.report_scope import REPORT_SCOPE
from tests.integration.app_harness import bearer, running_app, settings_for, user_token
from tests.support.random_refs import random_user

ACCOUNT = {"host": "10.0.0.1", "port": 993, "security": "tls", "username": "a", "password": "p"}


@pytest.fixture(scope="module")
def client(shared_database_url: str) -> Iterator[TestClient]:
    with running_app(settings_for(shared_database_url, mail_key=new_key())) as client:
        yield client


def assert_private(answer: Response, what: object) -> None:
    assert answer.headers.get("Cache-Control") == "no-store", (what, answer.headers)
    assert answer.headers.get("X-Content-Type-Options") == "nosniff", (what, answer.headers)


def test_every_operation_answers_no_store_and_nosniff(client: TestClient) -> None:
    app = client.app
    assert isinstance(app, FastAPI)
    user = random_user("headers")
    task_id = client.post("/sync/smart", headers=bearer(user_token(user))).json()["task_id"]
    seen = set()
    for path, operations in app.openapi()["paths"].items():
        for method in operations:
            if path == STREAM_PATH:
                continue  # it never ends; its 401 is below
            scope = REPORT_SCOPE if REPORT_PATH.fullmatch(path) else None
            token = bearer(user_token(user, scope=scope) if scope else user_token(user))
            body = ACCOUNT if path == "/accounts/imap" else {"percent": 5}
            url = path.replace("{task_id}", task_id)
            answer = client.request(method, url, headers=token, json=body)
            seen.add(answer.status_code)
            assert_private(answer, (method, path, answer.status_code))
            refused = client.request(method, url, headers=bearer("not.a.token"), json=body)
            assert_private(refused, (method, path, refused.status_code))
    assert {200, 202} <= seen, seen  # answers with data, not only problems
    assert_private(client.get(STREAM_PATH, headers=bearer("not.a.token")), STREAM_PATH)


def test_the_page_keeps_its_own_caching_and_gets_nosniff(client: TestClient) -> None:
    page = client.get("/ui/")
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-cache"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
