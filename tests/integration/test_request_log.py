"""One log line per API request, and a caller's traceparent carried with traces off.

The real app in-process on real PostgreSQL; traces stay off (the default).
"""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import Engine, text

from core.telemetry.logs import JsonFormatter
from tests.integration.app_harness import bearer, running_app, settings_for, user_token
from tests.support.random_refs import random_user

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
LOGGER = "coordinator.api.requests"


def request_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER]


def stored_traceparents(engine: Engine, user: str) -> list[str | None]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT e.metadata->>'traceparent', o.payload->>'traceparent' FROM events e "
                "LEFT JOIN outbox o ON o.event_id = e.event_id WHERE e.stream_id = :s"
            ),
            {"s": f"UserSync-{user}"},
        ).all()
    return [value for row in rows for value in row]


def test_each_request_is_one_line_with_its_ids_and_the_caller_s_trace_reaches_the_event(
    engine: Engine, shared_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    user = random_user()
    caplog.set_level(logging.INFO, logger=LOGGER)
    with running_app(settings_for(shared_database_url)) as client:
        headers = {**bearer(user_token(user)), "traceparent": TRACEPARENT, "X-Request-ID": "r-1"}
        assert client.post("/sync/smart", headers=headers).status_code == 202
        missing = client.get("/sync/tasks/sync_nothing", headers=bearer(user_token(user)))
        assert missing.status_code == 404
        assert client.get("/sync/status").status_code == 401
    start, lookup, refused = request_lines(caplog)
    fields = start.fields  # type: ignore[attr-defined]
    assert fields["method"] == "POST" and fields["route"] == "/sync/smart"
    assert fields["status"] == 202 and fields["duration_ms"] > 0
    assert (fields["user_id"], fields["correlation_id"]) == (user, "r-1")
    assert fields["trace_id"] == TRACE_ID  # the caller's, though no span was made
    assert lookup.fields["route"] == "/sync/tasks/{task_id}"  # type: ignore[attr-defined]
    assert lookup.fields["status"] == 404  # type: ignore[attr-defined]
    assert refused.fields["status"] == 401 and "user_id" not in refused.fields  # type: ignore[attr-defined]
    line = json.loads(JsonFormatter().format(start))
    assert {k: line[k] for k in ("method", "route", "status", "user_id", "trace_id")} == {
        "method": "POST",
        "route": "/sync/smart",
        "status": 202,
        "user_id": user,
        "trace_id": TRACE_ID,
    }
    # The event and its outbox row (so its Kafka record's headers) carry the caller's trace.
    assert stored_traceparents(engine, user) == [TRACEPARENT, TRACEPARENT]


def test_a_malformed_traceparent_is_ignored_and_the_line_can_be_turned_off(
    engine: Engine, shared_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    user = random_user()
    caplog.set_level(logging.DEBUG)
    settings = settings_for(shared_database_url, request_log_level="WARNING")
    with running_app(settings) as client:
        headers = {**bearer(user_token(user)), "traceparent": f"00-{'0' * 32}-00f067aa0ba902b7-01"}
        assert client.post("/sync/smart", headers=headers).status_code == 202
    assert request_lines(caplog) == []
    assert stored_traceparents(engine, user) == [None, None]
