"""Hold a user's stream row locked from the test, as a long transaction elsewhere would."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text


@contextmanager
def row_locked(engine: Engine, user: str) -> Iterator[threading.Event]:
    """Hold the (existing) stream row FOR UPDATE until the yielded event is set, or 30 s."""
    release, locked = threading.Event(), threading.Event()

    def hold() -> None:
        with engine.begin() as conn:
            found = conn.execute(
                text("SELECT 1 FROM streams WHERE stream_id = :s FOR UPDATE"),
                {"s": f"UserSync-{user}"},
            ).first()
            assert found, "the stream row must exist before it can be held"
            locked.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(10), "the stream row could not be locked"
    try:
        yield release
    finally:
        release.set()
        holder.join()
