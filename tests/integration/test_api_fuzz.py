"""schemathesis against the real app and PostgreSQL: every check, seeded, both token kinds."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events, from_schema
from schemathesis.python import asgi

from consumers.mail.password_box import new_key
from coordinator.api.app import create_app
from core.report_scope import REPORT_SCOPE
from tests.integration.app_harness import settings_for, user_token
from tests.support.jwks_server import AUDIENCE, ISSUER, SigningKey, jwks_server
from tests.support.random_refs import random_user

IDP_KEY = SigningKey.rsa("fuzz-rsa")
REPORTS = r"^/sync/tasks/\{task_id\}/(progress|complete|fail)$"
ACCEPTED = ["2xx", "401", "403", "404", "409"]
QUICK = {
    "status_wait_max_seconds": 0.05,  # min_version waits are bounded, not the subject here
    "mail_key": new_key(),
    "mail_allowed_hosts": "127.0.0.1",  # verify=true connects to no host the fuzzer makes up
}
# schemathesis' own list of what rejects invalid data, plus 413: a body over the endpoint's
# limit (a report's stats with thousands of items) is refused by size before its shape.
REJECTED = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
STATEFUL_422 = {"positive_data_acceptance": {"expected-statuses": [*ACCEPTED, "422"]}}


def fuzz_config(user_token: str, report_token: str) -> dict[str, Any]:
    return {
        "seed": 20240508,
        "generation": {"max-examples": 20, "deterministic": True},
        "checks": {
            "enabled": True,
            # A report on a task that is not live is well formed, and refused by design.
            "positive_data_acceptance": {"expected-statuses": ACCEPTED},
            "negative_data_rejection": {"expected-statuses": REJECTED},
        },
        "phases": {"stateful": {"enabled": False}},
        "headers": {"Authorization": f"Bearer {user_token}"},
        "operations": [
            {
                "include-path-regex": REPORTS,
                "headers": {"Authorization": f"Bearer {report_token}"},
            },
            # Refused by state, not by shape: a cursor this API did not make, and an
            # Idempotency-Key reused with other parameters.
            {"include-path": "/sync/tasks", "include-method": "GET", "checks": STATEFUL_422},
            {"include-path": "/sync/smart", "checks": STATEFUL_422},
            # A host outside SYNC_MAIL_ALLOWED_HOSTS, or a login that fails verification.
            {"include-path": "/accounts/imap", "include-method": "PUT", "checks": STATEFUL_422},
            # A status stream never ends by itself, so each call would last until the
            # client gives up; tests/e2e/test_status_stream.py drives it over real HTTP.
            {"include-path": "/sync/status/stream", "enabled": False},
        ],
    }


def failures_of(schema: Any) -> list[str]:
    """Every failed check and engine error of a whole run, described."""
    found: list[str] = []
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished) and event.status == Status.FAILURE:
            for case_id, checks in event.recorder.checks.items():
                interaction = event.recorder.interactions.get(case_id)
                where = (
                    f"{interaction.request.method} {interaction.request.uri}" if interaction else ""
                )
                found += [
                    f"{check.name} {where}: {_title(check.failure_info)}"
                    for check in checks
                    if check.status == Status.FAILURE
                ]
        elif isinstance(event, events.NonFatalError | events.FatalError):
            found.append(f"engine error: {event!r}")
    return found


def _title(info: Any) -> str:
    if info is None:
        return "?"
    status = getattr(info.failure, "status_code", "")
    return f"{info.failure.title} {status} {info.failure.message}"[:300]


@pytest.mark.parametrize("token_kind", ["hs256", "rs256-jwks"])
def test_api_matches_its_openapi(token_kind: str, shared_database_url: str) -> None:
    user = random_user("fuzz")
    report = user_token(user, scope=REPORT_SCOPE)
    with jwks_server(IDP_KEY) as idp:
        if token_kind == "hs256":
            settings, own = settings_for(shared_database_url, **QUICK), user_token(user)
        else:
            settings = settings_for(
                shared_database_url,
                jwt_jwks_url=idp.url,
                jwt_issuer=ISSUER,
                jwt_audience=AUDIENCE,
                **QUICK,
            )
            own = IDP_KEY.token(user, ttl=3600)
        config = SchemathesisConfig.from_dict(fuzz_config(own, report))
        schema = schemathesis.openapi.from_asgi(
            "/openapi.json", create_app(settings), config=config
        )
        try:
            failures = failures_of(schema)
        finally:
            asgi.shutdown_lifespans()
    assert failures == [], "\n".join(failures)
