"""The projector's NOTIFY and the API's one LISTEN connection, against real PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest

from core.database import libpq_url
from projections import status_notices
from projections.status_listener import StatusListener
from projections.status_view import StatusRow
from projections.store import ProjectionStore
from tests.support.random_refs import random_user


@pytest.fixture
def listening(shared_database_url: str) -> Iterator[psycopg.Connection[object]]:
    with psycopg.connect(libpq_url(shared_database_url), autocommit=True) as conn:
        conn.execute(f"LISTEN {status_notices.CHANNEL}")
        yield conn


def named(conn: psycopg.Connection[object], timeout: float) -> list[str]:
    return [u for n in conn.notifies(timeout=timeout) for u in status_notices.decode(n.payload)]


def write_status(url: str, user: str, *, commit: bool = True) -> None:
    store = ProjectionStore(url)
    try:
        with store.transaction() as tx:
            tx.save([StatusRow(user_id=user, status="running", last_version=1)], [])
            if not commit:
                raise RuntimeError("roll back")
    except RuntimeError:
        pass
    finally:
        store.close()


def test_the_projector_names_the_users_it_wrote_once_it_commits(
    shared_database_url: str, listening: psycopg.Connection[object]
) -> None:
    kept, dropped = random_user("kept"), random_user("dropped")
    write_status(shared_database_url, dropped, commit=False)
    write_status(shared_database_url, kept)
    assert named(listening, timeout=2.0) == [kept]


def wait_for(condition: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_the_listener_reconnects_and_says_anything_may_have_changed(
    shared_database_url: str,
) -> None:
    calls: list[set[str] | None] = []
    lock = threading.Lock()

    def on_change(users: set[str] | None) -> None:
        with lock:
            calls.append(users)

    def resets() -> int:
        with lock:
            return sum(1 for c in calls if c is None)

    listener = StatusListener(shared_database_url, on_change, max_backoff_seconds=0.5)
    listener.start()
    try:
        wait_for(lambda: resets() == 1)
        with psycopg.connect(libpq_url(shared_database_url), autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE query = %s AND datname = current_database() AND pid <> pg_backend_pid()",
                (f"LISTEN {status_notices.CHANNEL}",),
            ).fetchone()
        assert killed is not None and killed[0] >= 1
        wait_for(lambda: resets() == 2)  # back, and every open stream is read again
        user = random_user("after")
        write_status(shared_database_url, user)
        wait_for(lambda: any(c and user in c for c in list(calls)))
    finally:
        listener.stop()
