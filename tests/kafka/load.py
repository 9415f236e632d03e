"""Clicks at a steady rate from several users, and what the store and the topic then hold."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
from sqlalchemy import Engine, text

from tests.e2e.stack import Stack
from tests.kafka_topic import Record, read_topic


@dataclass
class Clicks:
    """Answers to the clicks sent so far, by status code."""

    answered: dict[int, int] = field(default_factory=dict)
    sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, status: int) -> None:
        with self.lock:
            self.answered[status] = self.answered.get(status, 0) + 1


@contextmanager
def clicking(stack: Stack, users: list[str], per_second: float) -> Iterator[Clicks]:
    """Click round-robin over `users` at `per_second` until the block ends, each click sent on
    its schedule without waiting for earlier answers (a slow answer delays no other click);
    on the way out, every click sent is answered (or the block fails)."""
    clicks, stop = Clicks(), threading.Event()

    async def run() -> None:
        pending: set[asyncio.Task[None]] = set()
        async with httpx.AsyncClient(base_url=stack.api.base_url, timeout=60) as client:

            async def click(user: str) -> None:
                answer = await client.post("/sync/smart", headers=stack.api.headers(user))
                clicks.count(answer.status_code)

            started, turn = time.monotonic(), 0
            while not stop.is_set():
                task = asyncio.create_task(click(users[turn % len(users)]))
                pending.add(task)
                task.add_done_callback(pending.discard)
                turn += 1
                clicks.sent = turn
                await asyncio.sleep(max(0.0, started + turn / per_second - time.monotonic()))
            if pending:
                await asyncio.wait(pending, timeout=60)

    thread = threading.Thread(target=asyncio.run, args=(run(),), daemon=True)
    thread.start()
    try:
        yield clicks
    finally:
        stop.set()
        thread.join(90)
    assert sum(clicks.answered.values()) == clicks.sent, (clicks.sent, clicks.answered)


def stored_versions(engine: Engine, users: list[str]) -> dict[str, list[int]]:
    """Each user's stored versions, in order."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT stream_id, version FROM events WHERE stream_id = ANY(:s) "
                "ORDER BY stream_id, version"
            ),
            {"s": [f"UserSync-{user}" for user in users]},
        ).all()
    found: dict[str, list[int]] = {}
    for stream, version in rows:
        found.setdefault(stream.removeprefix("UserSync-"), []).append(version)
    return found


def outbox_backlog(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM outbox")).scalar_one())


def wait_until(condition: object, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(0.2)


def topic_versions(bootstrap: str, topic: str, expect: int) -> dict[str, list[int]]:
    """Each user's versions in the order the topic holds them (duplicates included)."""
    records: list[Record] = read_topic(bootstrap, topic, expect=expect, timeout=60)
    found: dict[str, list[int]] = {}
    for record in records:
        found.setdefault(record.key, []).append(int(record.value["version"]))
    return found


def first_seen(versions: list[int]) -> list[int]:
    """The versions in the order each first appears: what an idempotent consumer applies."""
    seen: dict[int, None] = {}
    for version in versions:
        seen.setdefault(version, None)
    return list(seen)


def settled(stack: Stack, engine: Engine, users: list[str], ended: bool = True) -> bool:
    """The outbox is empty and the status view shows each stream's last version; with
    `ended`, every user's sync ended too (the worker has done all there was to do)."""
    stored = stored_versions(engine, users)
    for user in users:
        answer = httpx.get(
            f"{stack.api.base_url}/sync/status", headers=stack.api.headers(user), timeout=10
        ).json()
        if (ended and answer["is_syncing"]) or answer["version"] != stored[user][-1]:
            return False
    return outbox_backlog(engine) == 0
