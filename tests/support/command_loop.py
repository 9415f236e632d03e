"""The async command path driven from synchronous tests: one event loop on a thread.

Stores made for the command path keep connections made on the loop that first used them,
so every coroutine of a test session runs on this one loop (`run`); a test stays plain
synchronous code, as the processes that drive the handlers are.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

T = TypeVar("T")
_loop: asyncio.AbstractEventLoop | None = None
_guard = threading.Lock()


def loop() -> asyncio.AbstractEventLoop:
    """The session's command loop, started on first use (a daemon thread)."""
    global _loop
    with _guard:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="command-loop", daemon=True).start()
        return _loop


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Await `coroutine` on the command loop and return its result (or raise its error)."""
    return asyncio.run_coroutine_threadsafe(coroutine, loop()).result()


if TYPE_CHECKING:
    from sqlalchemy import Engine

    from coordinator.adapters.postgres.event_store import PostgresEventStore

_stores: dict[tuple[str, int], PostgresEventStore] = {}


def command_store(engine: Engine, max_event_bytes: int = 262_144) -> PostgresEventStore:
    """The PostgreSQL event store of `engine`'s database, one per database for the session:
    its connections belong to the command loop, so use it only through `run`."""
    from coordinator.adapters.postgres.event_store import PostgresEventStore
    from core.database import libpq_url

    url = libpq_url(engine.url.render_as_string(hide_password=False))
    key = (url, max_event_bytes)
    with _guard:
        if key not in _stores:
            _stores[key] = PostgresEventStore(url, size=2, max_event_bytes=max_event_bytes)
        return _stores[key]
