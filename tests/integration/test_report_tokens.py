"""A worker's report token is never a user token, in either token mode, even once cached."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from consumers.mail.password_box import new_key
from coordinator.api.app import REPORT_PATH
from core.report_scope import REPORT_SCOPE
from tests.integration.app_harness import bearer, running_app, settings_for, user_token
from tests.support.jwks_server import AUDIENCE, ISSUER, SigningKey, jwks_server
from tests.support.random_refs import random_user

IDP_KEY = SigningKey.rsa("rsa-report")
TASK = "sync_" + "0" * 32
BODIES: dict[str, Any] = {
    "/accounts/imap": {
        "host": "93.184.216.34",
        "port": 993,
        "security": "tls",
        "username": "ann",
        "password": "pw",
    }
}


@pytest.fixture(scope="module", params=["hs256", "jwks"])
def client(request: pytest.FixtureRequest, shared_database_url: str) -> Iterator[TestClient]:
    with jwks_server(IDP_KEY) as idp:
        jwks = {"jwt_jwks_url": idp.url, "jwt_issuer": ISSUER, "jwt_audience": AUDIENCE}
        extra = jwks if request.param == "jwks" else {}
        settings = settings_for(shared_database_url, mail_key=new_key(), **extra)
        with running_app(settings) as client:
            yield client


def user_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) that takes a bearer token, but for the worker's report routes."""
    found = [
        (method.upper(), path.replace("{task_id}", TASK))
        for path, operations in app.openapi()["paths"].items()
        for method, operation in operations.items()
        if operation.get("security") and not REPORT_PATH.fullmatch(path)
    ]
    assert len(found) >= 11  # status, stream, tasks, task, start, cancel, accounts x3, mail x2
    return found


def test_a_report_token_used_on_a_report_route_is_refused_on_every_user_route(
    client: TestClient,
) -> None:
    app = client.app
    assert isinstance(app, FastAPI)
    reason = "report_token" if app.state.tokens.jwks is None else "algorithm"
    report = bearer(user_token(random_user("report"), scope=REPORT_SCOPE))
    for _ in range(2):  # verified, then taken from the cache
        answer = client.post(f"/sync/tasks/{TASK}/progress", json={"percent": 5}, headers=report)
        assert answer.status_code == 409, answer.text  # accepted as a report: no such task
    for method, path in user_routes(app):
        for _ in range(2):
            answer = client.request(method, path, headers=report, json=BODIES.get(path))
            assert answer.status_code == 401, (method, path, answer.text)
            assert answer.json()["reason"] == reason, answer.text
            assert answer.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
