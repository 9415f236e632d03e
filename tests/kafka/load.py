"""Clicks at a steady rate from several users, and what the store and the topic then hold."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
from sqlalchemy import Engine, text

from tests.e2e.stack import Stack
from tests.support.kafka_topic import Record, read_topic


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
    """Click round-robin over `users` at `per_second` until the block ends: one thread keeps
    the schedule and hands each click to a pool of senders, so a slow answer delays no other
    click. On the way out every click is answered (a failure counts as status 0)."""
    clicks, stop = Clicks(), threading.Event()
    local = threading.local()

    def click(user: str) -> None:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=stack.api.base_url, timeout=60)
        try:
            answer = local.client.post("/sync/smart", headers=stack.api.headers(user))
            clicks.count(answer.status_code)
        except httpx.HTTPError:
            clicks.count(0)

    def schedule(pool: ThreadPoolExecutor) -> None:
        started = time.monotonic()
        while not stop.is_set():
            pool.submit(click, users[clicks.sent % len(users)])
            clicks.sent += 1
            stop.wait(max(0.0, started + clicks.sent / per_second - time.monotonic()))

    with ThreadPoolExecutor(max_workers=16, thread_name_prefix="click") as pool:
        scheduler = threading.Thread(target=schedule, args=(pool,), daemon=True)
        scheduler.start()
        try:
            yield clicks
        finally:
            stop.set()
            scheduler.join(10)
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
