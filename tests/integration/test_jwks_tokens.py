"""User tokens from an identity provider: RS256/ES256 against a real JWKS endpoint."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from coordinator.dev.embedded import free_port
from core.report_scope import REPORT_SCOPE
from tests.integration.app_harness import bearer, running_app, settings_for, user_token
from tests.support.jwks_server import AUDIENCE, ISSUER, JwksServer, SigningKey, jwks_server
from tests.support.random_refs import random_user

RSA_KEY = SigningKey.rsa("rsa-1")
EC_KEY = SigningKey.ec("ec-1")


@pytest.fixture(scope="module")
def idp() -> Iterator[JwksServer]:
    with jwks_server(RSA_KEY, EC_KEY) as server:
        yield server


@pytest.fixture(scope="module")
def client(shared_database_url: str, idp: JwksServer) -> Iterator[TestClient]:
    settings = settings_for(
        shared_database_url,
        jwt_jwks_url=idp.url,
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        jwt_leeway_seconds=30,
    )
    with running_app(settings) as client:
        yield client


@pytest.mark.parametrize("key", [RSA_KEY, EC_KEY], ids=["RS256", "ES256"])
def test_identity_provider_tokens_start_a_sync(client: TestClient, key: SigningKey) -> None:
    user = random_user()
    answer = client.post("/sync/smart", headers=bearer(key.token(user)))
    assert answer.status_code == 202
    status = client.get("/sync/status", headers=bearer(key.token(user)))
    assert status.status_code == 200 and status.json()["user_id"] == user


def test_worker_reports_stay_hs256(client: TestClient) -> None:
    user = random_user()
    task_id = client.post("/sync/smart", headers=bearer(RSA_KEY.token(user))).json()["task_id"]
    report = bearer(user_token(user, scope=REPORT_SCOPE))
    answer = client.post(f"/sync/tasks/{task_id}/progress", json={"percent": 10}, headers=report)
    assert answer.status_code == 200
    hs256_user = client.post("/sync/smart", headers=bearer(user_token(user)))
    assert hs256_user.status_code == 401 and hs256_user.json()["reason"] == "algorithm"


# Times are made when the test runs, not when it is collected: a suite takes minutes.
@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        (lambda now: {"iss": "https://evil.test/"}, "issuer_or_audience"),
        (lambda now: {"aud": "someone-else"}, "issuer_or_audience"),
        (lambda now: {"exp": now - 120}, "expired"),
        (lambda now: {"nbf": now + 120}, "not_yet_valid"),
        (lambda now: {"exp": str(now + 60)}, "claim_type"),
    ],
)
def test_claims_are_checked(
    client: TestClient, claims: Callable[[int], dict[str, Any]], reason: str
) -> None:
    token = RSA_KEY.token(random_user(), **claims(int(time.time())))
    answer = client.get("/sync/status", headers=bearer(token))
    assert answer.status_code == 401 and answer.json()["reason"] == reason
    assert answer.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_clock_skew_within_the_leeway_is_accepted(client: TestClient) -> None:
    token = RSA_KEY.token(random_user(), exp=int(time.time()) - 10)
    assert client.get("/sync/status", headers=bearer(token)).status_code == 200


def test_a_new_key_is_fetched_on_an_unknown_kid(client: TestClient, idp: JwksServer) -> None:
    rotated = SigningKey.rsa(f"rsa-{random_user()}")
    idp.keys.append(rotated)
    time.sleep(0.01)
    before = len(idp.fetches)
    answer = client.get("/sync/status", headers=bearer(rotated.token(random_user())))
    assert answer.status_code == 200
    assert len(idp.fetches) == before + 1


def test_made_up_kids_do_not_flood_the_identity_provider(
    client: TestClient, idp: JwksServer
) -> None:
    before = len(idp.fetches)
    for n in range(20):
        forged = SigningKey(f"forged-{n}", "RS256", RSA_KEY.private).token(random_user())
        answer = client.get("/sync/status", headers=bearer(forged))
        assert answer.status_code == 401 and answer.json()["reason"] == "unknown_key"
    assert len(idp.fetches) - before <= 1


def test_unreachable_jwks_is_a_503_with_retry_after(shared_database_url: str) -> None:
    settings = settings_for(
        shared_database_url, jwt_jwks_url=f"http://127.0.0.1:{free_port()}/jwks.json"
    )
    with running_app(settings) as client:
        answer = client.get("/sync/status", headers=bearer(RSA_KEY.token(random_user())))
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
    assert "identity provider" in answer.json()["detail"]
