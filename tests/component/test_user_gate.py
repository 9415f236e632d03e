"""UserGate: a known user's requests beyond `active` wait in order; others pass at once."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest
from starlette.types import Receive, Scope, Send

from coordinator.api.admission import user_gate
from coordinator.api.admission.crowd import CrowdMark, new_crowd_file
from coordinator.api.admission.user_gate import UserGate, UserLines

KNOWN = {"storm-token": "storm", "other-token": "other"}


class App:
    """An ASGI app that answers 200 once the test releases the request."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.started_at: dict[str, float] = {}
        self.release: dict[str, asyncio.Event] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = scope["path"]
        self.release[name] = asyncio.Event()
        self.started.append(name)
        self.started_at[name] = time.monotonic()
        await self.release[name].wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def scope(name: str, token: str | None) -> Scope:
    headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
    return {"type": "http", "path": name, "headers": headers, "method": "POST"}


async def call(gate: UserGate, name: str, token: str | None) -> dict[str, Any]:
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await gate(scope(name, token), receive, send)
    return {"status": sent[0]["status"], "body": b"".join(m.get("body", b"") for m in sent)}


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_users_requests_beyond_active_wait_in_order_and_overflow_is_429() -> None:
    async def scenario() -> None:
        app = App()
        refusals: list[str] = []
        lines = UserLines(on_refused=lambda: refusals.append("429"))
        gate = UserGate(app, lines, KNOWN.get, active=2, waiting=2, retry_after=3)
        calls = {n: asyncio.ensure_future(call(gate, n, "storm-token")) for n in "abcd"}
        await settle()
        assert app.started == ["a", "b"] and lines.held == 2
        refused = await call(gate, "e", "storm-token")
        assert refused["status"] == 429 and refusals == ["429"]
        assert "2 wait" in json.loads(refused["body"])["detail"]
        # Another known user, an unknown token and no token at all pass the full line.
        for name, token in (("x", "other-token"), ("y", "fresh-token"), ("z", None)):
            calls[name] = asyncio.ensure_future(call(gate, name, token))
        await settle()
        assert app.started == ["a", "b", "x", "y", "z"]
        app.release["b"].set()
        await settle()
        assert app.started[-1] == "c", "the first in line takes the finished one's place"
        for name in ("a", "c", "d", "x", "y", "z"):
            await settle()
            app.release[name].set()
        results = await asyncio.gather(*calls.values())
        assert [r["status"] for r in results] == [200] * 7
        assert app.started == ["a", "b", "x", "y", "z", "c", "d"]
        assert lines.held == 0 and lines.lines == {}

    asyncio.run(scenario())


def test_a_request_that_leaves_its_line_frees_no_place_it_did_not_have() -> None:
    async def scenario() -> None:
        app = App()
        lines = UserLines()
        gate = UserGate(app, lines, KNOWN.get, active=1, waiting=5, retry_after=1)
        first = asyncio.ensure_future(call(gate, "a", "storm-token"))
        gone = asyncio.ensure_future(call(gate, "b", "storm-token"))
        last = asyncio.ensure_future(call(gate, "c", "storm-token"))
        await settle()
        gone.cancel()
        await settle()
        assert app.started == ["a"] and lines.held == 1
        app.release["a"].set()
        await settle()
        assert app.started == ["a", "c"]
        app.release["c"].set()
        assert [(await first)["status"], (await last)["status"]] == [200, 200]
        assert lines.lines == {}

    asyncio.run(scenario())


def test_a_waiting_request_cancelled_as_its_turn_is_skipped_leaves_cleanly() -> None:
    async def scenario() -> None:
        app = App()
        lines = UserLines()
        gate = UserGate(app, lines, KNOWN.get, active=1, waiting=5, retry_after=1)
        first = asyncio.ensure_future(call(gate, "a", "storm-token"))
        second = asyncio.ensure_future(call(gate, "b", "storm-token"))
        third = asyncio.ensure_future(call(gate, "c", "storm-token"))
        await settle()
        # In one loop turn "a" finishes (skipping b's turn, cancelled at once) before "b"
        # itself sees its cancellation.
        app.release["a"].set()
        second.cancel()
        await settle()
        assert second.cancelled() and app.started == ["a", "c"]
        app.release["c"].set()
        assert [(await first)["status"], (await third)["status"]] == [200, 200]
        assert lines.lines == {}

    asyncio.run(scenario())


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_a_user_alone_runs_more_and_is_held_to_its_share_once_another_shows_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    monkeypatch.setattr(user_gate, "time", clock)

    async def scenario() -> None:
        app = App()
        lines = UserLines()
        gate = UserGate(app, lines, KNOWN.get, active=1, waiting=10, retry_after=1, alone=3)
        calls = [asyncio.ensure_future(call(gate, "a", "storm-token"))]
        await settle()
        clock.now += user_gate.SHARED_SECONDS  # nobody else for a while: alone
        calls += [asyncio.ensure_future(call(gate, n, "storm-token")) for n in "bcde"]
        await settle()
        assert app.started == ["a", "b", "c"] and lines.held == 2
        calls.append(asyncio.ensure_future(call(gate, "x", "other-token")))
        await settle()
        assert app.started[-1] == "x", "the newcomer does not wait behind the storm"
        for name in ("a", "b"):  # shared now: the storm shrinks to one running
            app.release[name].set()
            await settle()
        assert app.started == ["a", "b", "c", "x"] and lines.held == 2
        app.release["c"].set()
        await settle()
        assert app.started[-1] == "d", "one finished, one let in: its share is one"
        app.release["x"].set()
        clock.now += user_gate.SHARED_SECONDS  # the other user has gone: alone again
        app.release["d"].set()
        await settle()
        assert app.started[-1] == "e" and lines.held == 0
        app.release["e"].set()
        results = await asyncio.gather(*calls)
        assert [r["status"] for r in results] == [200] * 6
        assert lines.lines == {}

    asyncio.run(scenario())


def test_a_newcomer_in_one_worker_shrinks_a_storm_in_another(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Worker processes of one API share the mark: a storm that one worker sees alone is
    held to its share as soon as another worker sees a second user."""
    clock = Clock()
    monkeypatch.setattr(user_gate, "time", clock)
    path = tmp_path / "crowd"
    path.write_bytes(bytes(8))

    async def scenario() -> None:
        storm_app, other_app = App(), App()
        storm_lines = UserLines()
        gates = [
            UserGate(app, lines, KNOWN.get, 1, 10, 1, alone=3, crowd=CrowdMark(str(path)))
            for app, lines in ((storm_app, storm_lines), (other_app, UserLines()))
        ]
        storm, other = gates
        calls = [asyncio.ensure_future(call(storm, "a", "storm-token"))]
        await settle()
        clock.now += user_gate.SHARED_SECONDS
        calls += [asyncio.ensure_future(call(storm, n, "storm-token")) for n in "bcde"]
        await settle()
        assert storm_app.started == ["a", "b", "c"], "alone in every worker: the lone share"
        calls.append(asyncio.ensure_future(call(other, "x", "storm-token")))
        calls.append(asyncio.ensure_future(call(other, "y", "other-token")))
        await settle()
        assert other_app.started == ["x", "y"]
        for name in ("a", "b"):
            storm_app.release[name].set()
            await settle()
        assert storm_app.started == ["a", "b", "c"], "the other worker's newcomer counts here"
        assert storm_lines.held == 2
        storm_app.release["c"].set()
        await settle()
        assert storm_app.started[-1] == "d"
        for app, names in ((other_app, "xy"), (storm_app, "de")):
            for name in names:
                app.release[name].set()
                await settle()
        results = await asyncio.gather(*calls)
        assert [r["status"] for r in results] == [200] * 7

    asyncio.run(scenario())


def test_a_crowd_mark_written_in_one_mapping_is_read_in_another(tmp_path: Path) -> None:
    path = new_crowd_file()
    try:
        first, second = CrowdMark(path), CrowdMark(path)
        assert second.until() == 0.0, "a new mark: never shared"
        first.mark(1234.5)
        assert second.until() == 1234.5
    finally:
        os.unlink(path)


def test_while_shared_a_users_requests_start_at_most_per_second() -> None:
    async def scenario() -> None:
        app = App()
        gate = UserGate(
            app, UserLines(), KNOWN.get, 8, 10, 1, alone=8, per_second=50
        )  # 20 ms apart
        calls = [asyncio.ensure_future(call(gate, n, "storm-token")) for n in "abc"]
        await settle()
        assert app.started == ["a", "b", "c"], "alone: not paced"
        calls.append(asyncio.ensure_future(call(gate, "x", "other-token")))
        shared_at = time.monotonic()
        calls += [asyncio.ensure_future(call(gate, n, "storm-token")) for n in "def"]
        await settle()
        assert app.started == ["a", "b", "c", "x", "d"], "the next starts at once, then paced"
        async with asyncio.timeout(5):
            while len(app.started) < 7:
                await asyncio.sleep(0.005)
        assert app.started[-2:] == ["e", "f"]
        at = app.started_at
        assert at["e"] >= shared_at + 0.02 and at["f"] >= shared_at + 0.04
        for event in app.release.values():
            event.set()
        results = await asyncio.gather(*calls)
        assert [r["status"] for r in results] == [200] * 7

    asyncio.run(scenario())
