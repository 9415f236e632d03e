"""GET /sync/status/stream over real HTTP: live rows, resume by version, heartbeats, bounds."""

from __future__ import annotations

import signal
import time
from typing import Any

import httpx
import pytest

from tests.e2e.processes import running_api
from tests.e2e.sse import EventStream, Message, open_stream
from tests.e2e.stack import Stack
from tests.e2e.test_sync_lifecycle import click
from tests.support.random_refs import random_user


def statuses(messages: list[Message]) -> list[dict[str, Any]]:
    return [m.json() for m in messages if m.comment is None and m.event == "status"]


@pytest.fixture(scope="module")
def finished(live_stack: Stack) -> tuple[str, list[Message]]:
    """A user whose first sync ran to completion while a stream watched; its events."""
    user = random_user("stream")
    with open_stream(live_stack.api.base_url, live_stack.api.headers(user)) as stream:
        first = stream.events_until(lambda s: True, timeout=10)
        click(live_stack, user)
        rest = stream.events_until(lambda s: s["status"] == "completed", timeout=60)
    return user, first + rest


def test_the_current_row_comes_first_then_each_change_with_its_version(
    finished: tuple[str, list[Message]],
) -> None:
    user, events = finished
    rows = [e.json() for e in events]
    assert rows[0]["status"] == "none" and events[0].id == "0"  # nothing synced yet
    ids = [int(e.id or -1) for e in events]
    assert ids == sorted(set(ids)) and ids == [r["version"] for r in rows]
    running = [r["progress_percentage"] for r in rows if r["status"] == "running"]
    assert any(0 < p < 100 for p in running), running  # progress arrived while it ran
    assert rows[-1]["progress_percentage"] == 100 and not rows[-1]["is_syncing"]
    assert {r["user_id"] for r in rows} == {user}


def test_last_event_id_resumes_after_that_version(
    live_stack: Stack, finished: tuple[str, list[Message]]
) -> None:
    user, events = finished
    last = int(events[-1].id or 0)
    headers = live_stack.api.headers(user)
    with open_stream(live_stack.api.base_url, {**headers, "Last-Event-ID": str(last)}) as stream:
        assert statuses(stream.quiet_for(1.5)) == []  # up to date: heartbeats only
        click(live_stack, user)  # a new task: the next version arrives
        newer = stream.events_until(lambda s: s["status"] == "running", timeout=30)
    with open_stream(live_stack.api.base_url, {**headers, "Last-Event-ID": str(last)}) as stream:
        caught_up = stream.events_until(lambda s: True, timeout=10)  # missed: the newest row
    assert int(newer[0].id or 0) > last
    assert int(caught_up[0].id or 0) >= int(newer[-1].id or 0)  # not each missed version


def test_heartbeats_keep_an_idle_stream_open(live_stack: Stack) -> None:
    user = random_user("idle")
    with open_stream(live_stack.api.base_url, live_stack.api.headers(user)) as stream:
        got = stream.quiet_for(2.0)
    assert got[0].comment is None and got[0].json()["status"] == "none"
    heartbeats = [m for m in got if m.comment == "heartbeat"]
    assert len(heartbeats) >= 2, got  # every 0.5 s in this stack
    assert statuses(got[1:]) == []


def test_streams_per_user_are_bounded_and_freed_on_close(live_stack: Stack) -> None:
    user, other = random_user("busy"), random_user("other")
    base, headers = live_stack.api.base_url, live_stack.api.headers(user)
    with open_stream(base, headers) as one, open_stream(base, headers) as two:
        one.next(), two.next()
        refused = httpx.get(f"{base}/sync/status/stream", headers=headers, timeout=10)
        # Open streams take none of the user's 2 running requests: a click still goes through.
        assert click(live_stack, user)["task_id"]
        with open_stream(base, live_stack.api.headers(other)) as theirs:
            assert theirs.next().json()["user_id"] == other  # others are not affected
    assert refused.status_code == 429
    problem = refused.json()
    assert problem["reason"] == "too_many_streams", problem
    assert (
        problem["type"].endswith(":too-many-streams")
        and "SYNC_STREAM_MAX_PER_USER" in (problem["detail"])
    )
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["retry-after"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the server notices the closed streams shortly
        with open_stream(base, headers) as again:
            if again.response.status_code == 200:
                assert again.next().json()["user_id"] == user
                return
        time.sleep(0.2)
    raise AssertionError("closed streams were not given back")


def test_a_user_never_receives_another_users_rows(live_stack: Stack) -> None:
    syncing, watching = random_user("a"), random_user("b")
    base = live_stack.api.base_url
    with (
        open_stream(base, live_stack.api.headers(syncing)) as theirs,
        open_stream(base, live_stack.api.headers(watching)) as mine,
    ):
        theirs.next(), mine.next()
        click(live_stack, syncing)
        seen = theirs.events_until(lambda s: s["progress_percentage"] > 0, timeout=30)
        mine.quiet_for(1.0)
    assert {e.json()["user_id"] for e in seen} == {syncing}
    assert [s["user_id"] for s in statuses(mine.seen)] == [watching]  # its first row only


def test_bad_last_event_id_and_missing_token_are_problems(live_stack: Stack) -> None:
    base = live_stack.api.base_url
    bad = httpx.get(
        f"{base}/sync/status/stream",
        headers=live_stack.api.headers(random_user(), **{"Last-Event-ID": "abc"}),
    )
    anonymous = httpx.get(f"{base}/sync/status/stream")
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"][0] == "header"
    assert anonymous.status_code == 401 and anonymous.json()["reason"] == "missing"


def test_stopping_the_api_ends_its_streams(live_stack: Stack) -> None:
    database_url = live_stack.settings["database_url"]
    with running_api(database_url, stream_heartbeat_seconds="0.5") as api:
        with open_stream(api.base_url, api.headers(random_user())) as stream:
            stream.next()
            api.process.send_signal(signal.SIGTERM)
            rest = _until_closed(stream)
        exited = api.process.wait(15)  # uvicorn would wait for the open stream forever
    assert all(m.comment == "heartbeat" for m in rest), rest
    assert exited in (0, -signal.SIGTERM)


def _until_closed(stream: EventStream, timeout: float = 15) -> list[Message]:
    """What the stream sends until the server ends it; fails if it is still open at timeout."""
    rest: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            rest.append(stream.next())  # heartbeats every 0.5 s keep this loop turning
    except StopIteration:
        return rest
    raise AssertionError(f"the stream was still open {timeout}s later")


def test_a_stream_ends_when_its_token_expires(live_stack: Stack) -> None:
    api = live_stack.api
    token = api.token(random_user("expiring"), ttl=3)
    opened = time.monotonic()
    with open_stream(api.base_url, {"Authorization": f"Bearer {token}"}) as stream:
        stream.next()
        rest = _until_closed(stream, timeout=20)
    lasted = time.monotonic() - opened
    assert all(m.comment == "heartbeat" or m.event == "status" for m in rest), rest
    assert lasted < 10, f"the stream outlived its token by {lasted - 3:.1f} s"
    refused = httpx.get(
        f"{api.base_url}/sync/status/stream", headers={"Authorization": f"Bearer {token}"}
    )
    assert refused.status_code == 401, "the client must come back with a fresh token"
