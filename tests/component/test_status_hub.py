"""The status streams' fan-out: newest row only, per-user bound, other users untouched, close."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from coordinator.api.status_hub import HubClosed, StatusHub, TooManyStreams


def row(user: str, version: int) -> dict[str, Any]:
    return {"user_id": user, "last_version": version, "status": "running"}


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def test_a_slow_reader_gets_the_newest_row_not_each_version() -> None:
    async def scenario() -> list[int | None]:
        hub = StatusHub(max_per_user=2)
        table = {"a": row("a", 1)}
        hub.bind(asyncio.get_running_loop(), lambda users: [table[u] for u in users])
        stream = hub.subscribe("a")
        for version in (1, 2, 3):
            table["a"] = row("a", version)
            hub.changed({"a"})
        await asyncio.sleep(0)  # the offers run on the loop
        first = await stream.next_row(0.1)
        hub.changed({"a"})  # the same version again: nothing new
        await asyncio.sleep(0)
        again = await stream.next_row(0.05)
        return [first["last_version"] if first else None, again["last_version"] if again else None]

    assert run(scenario()) == [3, None]


def test_streams_per_user_are_bounded_and_given_back() -> None:
    hub = StatusHub(max_per_user=2)
    first, _ = hub.subscribe("a"), hub.subscribe("a")
    with pytest.raises(TooManyStreams, match="SYNC_STREAM_MAX_PER_USER"):
        hub.subscribe("a")
    hub.subscribe("b")  # another user is not affected
    hub.unsubscribe(first)
    hub.subscribe("a")
    assert hub.open_streams("a") == 2


def test_only_users_with_a_stream_are_read_and_each_gets_only_its_rows() -> None:
    async def scenario() -> tuple[list[list[str]], Any, Any]:
        hub = StatusHub(max_per_user=1)
        reads: list[list[str]] = []

        def read(users: list[str]) -> list[dict[str, Any]]:
            reads.append(users)
            return [row(u, 5) for u in users]

        hub.bind(asyncio.get_running_loop(), read)
        a, b = hub.subscribe("a"), hub.subscribe("b")
        hub.changed({"a", "nobody-here"})
        await asyncio.sleep(0)
        return reads, await a.next_row(0.1), await b.next_row(0.05)

    reads, to_a, to_b = run(scenario())
    assert reads == [["a"]]
    assert to_a["user_id"] == "a" and to_b is None


def test_a_failed_read_is_retried_on_the_next_call() -> None:
    async def scenario() -> Any:
        hub = StatusHub(max_per_user=1)
        failing = [True]

        def read(users: list[str]) -> list[dict[str, Any]]:
            if failing.pop():
                raise OSError("database gone")
            return [row(u, 2) for u in users]

        hub.bind(asyncio.get_running_loop(), read)
        stream = hub.subscribe("a")
        hub.changed({"a"})
        failing.append(False)
        hub.changed(set())  # the listener's idle call
        await asyncio.sleep(0)
        return await stream.next_row(0.1)

    assert run(scenario())["last_version"] == 2


def test_closing_ends_every_stream_and_refuses_new_ones() -> None:
    async def scenario() -> None:
        hub = StatusHub(max_per_user=1)
        hub.bind(asyncio.get_running_loop(), lambda users: [])
        stream = hub.subscribe("a")
        waiting = asyncio.create_task(stream.next_row(30))
        await asyncio.sleep(0)
        hub.close()
        with pytest.raises(HubClosed):
            await waiting
        with pytest.raises(HubClosed):
            hub.subscribe("b")

    run(scenario())


def test_a_resumed_stream_gets_only_rows_newer_than_its_last_event_id() -> None:
    async def scenario() -> list[Any]:
        hub = StatusHub(max_per_user=1)
        hub.bind(asyncio.get_running_loop(), lambda users: [])
        stream = hub.subscribe("a", after_version=5)
        stream.offer(row("a", 5))
        same = await stream.next_row(0.05)
        stream.offer(row("a", 6))
        return [same, await stream.next_row(0.05)]

    same, newer = run(scenario())
    assert same is None and newer["last_version"] == 6
