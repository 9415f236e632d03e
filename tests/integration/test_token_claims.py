"""Claims that are no date are refused with a 401 and a reason; no token makes a 5xx."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.report_scope import REPORT_SCOPE
from tests.integration.app_harness import bearer, hs256, running_app, settings_for
from tests.support.random_refs import random_user

PROBLEM = "application/problem+json"
TASK = "sync_" + "0" * 32
REQUESTS = [
    ("GET", "/sync/status"),
    ("POST", "/sync/smart"),  # taken by the start shortcut when the token is good
    ("POST", f"/sync/tasks/{TASK}/progress"),
]
HUGE = [10**400, 2**64, 1e308, -(10**400), -1.0, 253_402_300_800]
HUGE_IDS = ["1e400", "2^64", "1e308", "-1e400", "-1", "year-10000"]


@pytest.fixture(scope="module")
def client(shared_database_url: str) -> Iterator[TestClient]:
    with running_app(settings_for(shared_database_url)) as client:
        yield client


def ask(client: TestClient, method: str, path: str, token: str) -> tuple[int, dict[str, object]]:
    body = {"percent": 1} if path.endswith("progress") else None
    answer = client.request(method, path, headers=bearer(token), json=body)
    assert answer.status_code < 500, (method, path, answer.status_code, answer.text)
    if answer.status_code >= 400:
        assert answer.headers["content-type"] == PROBLEM, answer.text
    return answer.status_code, answer.json()


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("value", HUGE, ids=HUGE_IDS)
def test_a_claim_that_is_no_date_is_a_401_with_a_reason(
    client: TestClient, claim: str, value: float
) -> None:
    claims: dict[str, object] = {"sub": random_user(), "exp": int(time.time()) + 60}
    claims[claim] = value
    for scope in (None, REPORT_SCOPE):
        token = hs256({**claims, "scope": scope} if scope else claims)
        for method, path in REQUESTS:
            status, body = ask(client, method, path, token)
            assert (status, body["reason"]) == (401, "claim_range"), (method, path, body)
            assert claim in str(body["detail"])


# Numbers of every magnitude, up to 10**1000.
MAGNITUDES = st.builds(
    lambda digits, power: digits * 10**power,
    st.integers(min_value=1, max_value=99),
    st.sampled_from(range(1001)),  # every power alike: plain integers favour small ones
)
DATES = st.one_of(
    MAGNITUDES,
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**64), max_value=2 * 253_402_300_799),
    st.text(max_size=20),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
)
# A good subject: the dates are what the checks meet (test_token_rules covers `sub`).
SUBJECTS = st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=20)
CLAIMS = st.fixed_dictionaries(
    {"sub": SUBJECTS, "exp": DATES},
    optional={
        "nbf": DATES,
        "iat": DATES,
        "scope": st.sampled_from([REPORT_SCOPE, "", "read", f"read {REPORT_SCOPE}"]),
    },
)


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(claims=CLAIMS, request=st.sampled_from(REQUESTS))
def test_no_signed_claims_make_a_server_error(
    client: TestClient, claims: dict[str, object], request: tuple[str, str]
) -> None:
    ask(client, *request, hs256(claims))
