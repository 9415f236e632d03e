"""`syncctl replay audit` for a scripted user: the timeline support staff would read."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from coordinator import cli
from coordinator.service.handlers import Dependencies, handle
from core.database import make_engine
from core.domain.commands import (
    CompleteSync,
    ExpireStaleSync,
    FailSync,
    ReportProgress,
    RequestMeta,
    StartRequested,
)
from core.domain.events import Envelope
from core.settings import Settings
from core.telemetry.traceparent import trace_id_of
from tests.integration.test_replay_verify import replay
from tests.support.command_loop import command_store, run
from tests.support.random_refs import random_user


@pytest.fixture
def own_engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=4)
    yield engine
    engine.dispose()


def script(engine: Engine, user: str) -> list[Envelope]:
    """Every kind of decision, in a known order; returns the stored events."""
    store = command_store(engine)
    lease = Dependencies(store, timedelta(minutes=30), 3)
    lapsed = Dependencies(store, timedelta(0), 3)  # dead the moment it starts
    clicks = iter(range(100))

    def meta() -> RequestMeta:
        # Clicks are traced (trace id = click number), the reaper's expiry is not.
        click = next(clicks)
        return RequestMeta(f"req-{click}", traceparent=f"00-{click + 1:032x}-{1:016x}-01")

    def task() -> str:
        return run(store.snapshot(user))[1].task_id or "none"

    for _ in range(4):
        run(handle(StartRequested(user, False, meta()), lease))  # v1 started, v2-4 reused
    run(handle(ReportProgress(user, task(), 40.0, {"messages": 4}, meta()), lease))  # v5
    run(handle(StartRequested(user, False, meta()), lease))  # v6 reused
    run(handle(FailSync(user, task(), "auth revoked", meta()), lease))  # v7
    run(handle(StartRequested(user, False, meta()), lapsed))  # v8 started
    run(handle(ExpireStaleSync(user, RequestMeta("reaper")), lease))  # v9 by the reaper
    run(handle(StartRequested(user, False, meta()), lapsed))  # v10 started
    run(handle(StartRequested(user, False, meta()), lease))  # v11 expired, v12 started
    run(handle(CompleteSync(user, task(), {"messages": 9}, meta()), lease))  # v13
    events = run(store.read_stream(user))
    assert len(events) == 13
    return events


def ms(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def columns(out: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line.strip()) for line in out.splitlines()]


def expected_table(e: list[Envelope]) -> list[list[str]]:
    """The table's columns, written out from the stored events' times and ids."""

    def at(n: int) -> str:
        return ms(e[n - 1].occurred_at)

    def lease(n: int) -> str:
        return ms(e[n - 1].data.lease_expires_at)  # type: ignore[union-attr]

    def row(n: int, reason: str) -> list[str]:
        v = e[n - 1]
        trace = trace_id_of(v.traceparent) or "-"
        return [at(n), str(n), v.event_type, v.data.task_id, v.correlation_id, trace, reason]

    t1, t3 = e[0].data.task_id, e[9].data.task_id
    reused = f"reused because task {t1} is live until {lease(1)} (last at {at(4)})"
    return [
        ["TIME", "VERSION", "EVENT", "TASK", "CORRELATION", "TRACE", "REASON"],
        row(1, "started"),
        [at(2), "2-4", "SyncReused x3", t1, "req-1 +2", f"{2:032x}", reused],
        row(5, f"progress 40% renewed lease to {lease(5)}"),
        row(6, f"reused because task {t1} is live until {lease(5)}"),
        row(7, "failed: auth revoked"),
        row(8, "started"),
        row(9, f"expired because the lease ran out at {lease(8)} (detected by reaper)"),
        row(10, "started"),
        row(11, f"expired because the lease ran out at {lease(10)} (detected by start)"),
        row(12, f"started replacing task {t3}"),
        row(13, "completed"),
    ]


def test_table_timeline_explains_every_decision(own_engine: Engine, database_url: str) -> None:
    user = random_user()
    events = script(own_engine, user)
    code, out, _ = replay(database_url, "audit", "--user", user)
    assert code == 0
    assert columns(out) == expected_table(events)


def test_json_lists_every_event(own_engine: Engine, database_url: str) -> None:
    user = random_user()
    events = script(own_engine, user)
    code, out, _ = replay(database_url, "audit", "--user", user, "--format", "json")
    assert code == 0
    body = json.loads(out)
    assert (body["user_id"], body["stream_id"]) == (user, events[0].stream_id)
    table = expected_table(events)
    reasons = (
        [table[1][6]]
        + [
            f"reused because task {events[0].data.task_id} is live until "
            f"{ms(events[0].data.lease_expires_at)}"  # type: ignore[union-attr]
        ]
        * 3
        + [line[6] for line in table[3:]]
    )
    keys = ("version", "event_type", "task_id", "correlation_id", "trace_id", "reason")
    assert [tuple(e[k] for k in keys) for e in body["events"]] == [
        (s.version, s.event_type, s.data.task_id, s.correlation_id, trace_id_of(s.traceparent), why)
        for s, why in zip(events, reasons, strict=True)
    ]
    assert [datetime.fromisoformat(e["time"]) for e in body["events"]] == [
        s.occurred_at for s in events
    ]
    assert [e["event_id"] for e in body["events"]] == [s.event_id for s in events]
    assert "as_of" not in body


def test_time_window_and_state_as_of(own_engine: Engine, database_url: str) -> None:
    user = random_user()
    events = script(own_engine, user)
    at = events[5].occurred_at  # version 6: task 1 running, reused four times, 40 %
    window = [
        "--since",
        events[4].occurred_at.isoformat(),
        "--until",
        events[6].occurred_at.isoformat(),
    ]
    code, out, _ = replay(database_url, "audit", "--user", user, *window)
    assert code == 0
    assert [line[1] for line in columns(out)[1:]] == ["5", "6", "7"]

    code, out, _ = replay(database_url, "audit", "--user", user, "--as-of", at.isoformat())
    assert code == 0
    lines = out.splitlines()
    assert [line[1] for line in columns("\n".join(lines[:5]))[1:]] == ["1", "2-4", "5", "6"]
    state = lines[lines.index("") + 1 :]
    assert state[0] == f"state as of {ms(at)} (after version 6)"
    assert columns("\n".join(state[1:])) == [
        ["task", events[0].data.task_id],
        ["status", "running (live at that moment)"],
        ["sync type", "incremental"],
        ["started at", ms(events[0].occurred_at)],
        ["lease until", ms(events[4].data.lease_expires_at)],  # type: ignore[union-attr]
        ["reused", "4 times"],
        ["progress", "40%"],
        ["full queued", "no"],
        ["follow-up", "no"],
    ]

    _, out, _ = replay(
        database_url, "audit", "--user", user, "--as-of", at.isoformat(), "--format", "json"
    )
    body = json.loads(out)
    assert [e["version"] for e in body["events"]] == [1, 2, 3, 4, 5, 6]
    assert body["as_of"]["version"] == 6 and body["as_of"]["live"] is True
    assert body["as_of"]["state"]["reuse_count"] == 4
    assert body["as_of"]["state"]["status"] == "running"


def test_unknown_user_and_bad_times(
    own_engine: Engine, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = replay(database_url, "audit", "--user", "nobody-" + random_user())
    assert (code, out) == (1, "")
    assert "no history for user" in err
    settings = Settings(database_url=database_url)
    assert cli.run(settings, ["replay", "audit", "--user", "x", "--since", "yesterday"]) == 2
    assert "'yesterday' is not an ISO 8601 time" in capsys.readouterr().err
    assert cli.run(settings, ["replay", "audit", "--user", "x", "--as-of", "2026-13-01"]) == 2
    assert cli.run(settings, ["replay", "audit"]) == 2
