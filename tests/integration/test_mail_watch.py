"""`syncctl watch` against the test Dovecot and PostgreSQL: notices become commands, accounts
are divided among watchers, and a killed watcher's accounts are taken over."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import Engine, create_engine, text

from consumers.mail.accounts import AccountStore, ImapAccount
from consumers.mail.password_box import PasswordBox, new_key
from consumers.mail.watch_leases import holders
from coordinator.adapters.postgres.event_store import PostgresEventStore
from coordinator.dev.dovecot import Dovecot, start_dovecot
from coordinator.service.handlers import Dependencies, handle_batch
from core.database import libpq_url
from core.domain.commands import CompleteSync, RequestMeta
from tests.e2e.processes import spawn, stop
from tests.support.mailbox import append, new_login
from tests.support.random_refs import random_user

LEASE = 2.0  # seconds: a killed watcher's accounts are taken over within about 2.7 s
T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def key() -> str:
    return new_key()


@pytest.fixture
def watch_engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


def register(engine: Engine, key: str, user: str, account: ImapAccount) -> None:
    AccountStore(engine, PasswordBox(key)).put(user, account)


def start_watcher(
    database_url: str, key: str, idle_renew: str = "1500", poll: str = "60"
) -> subprocess.Popen[bytes]:
    return spawn(
        "watch",
        database_url=database_url,
        mail_key=key,
        mail_allowed_hosts="127.0.0.1",
        watch_lease_seconds=str(LEASE),
        watch_idle_renew_seconds=idle_renew,
        watch_poll_seconds=poll,
    )


def events(engine: Engine, user: str) -> list[tuple[str, str | None]]:
    """(event type, reason of a start) of the user's stream, in order."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT event_type, data->>'reason' FROM events WHERE stream_id = :s "
                "ORDER BY version"
            ),
            {"s": f"UserSync-{user}"},
        ).all()
    return [(kind, reason) for kind, reason in rows]


def connections(dovecot: Dovecot) -> Counter[str]:
    """IMAP connections per login, as Dovecot itself counts them (`doveadm who`)."""
    listing = subprocess.run(
        ["doveadm", "-c", str(dovecot.config_path()), "who", "-1"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    counts: Counter[str] = Counter()
    for line in listing.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 2 and fields[1] == "imap":
            counts[fields[0]] += 1
    return counts


def complete(database_url: str, user: str, task_id: str) -> None:
    """What a worker reports at the end, through the same handler."""

    async def run() -> None:
        store = PostgresEventStore(libpq_url(database_url), 1)
        deps = Dependencies(store, timedelta(minutes=30), 3)
        try:
            command = CompleteSync(user, task_id, {}, RequestMeta("test"))
            [answer] = await handle_batch([command], deps)
            assert not isinstance(answer, Exception), answer
        finally:
            await store.close()

    asyncio.run(run())


def started_task(engine: Engine, user: str) -> str:
    with engine.connect() as conn:
        task: str = conn.execute(
            text(
                "SELECT data->>'task_id' FROM events WHERE stream_id = :s "
                "AND event_type = 'SyncStarted' ORDER BY version DESC LIMIT 1"
            ),
            {"s": f"UserSync-{user}"},
        ).scalar_one()
    return task


@pytest.fixture
def no_idle_dovecot() -> Iterator[Dovecot]:
    """A Dovecot that does not offer IDLE, as some servers do not."""
    root = Path(tempfile.mkdtemp(prefix="sync-test-dovecot-no-idle-"))
    server = start_dovecot(root, without=frozenset({"IDLE"}))
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_new_mail_starts_a_sync_and_a_storm_during_it_queues_exactly_one_follow_up(
    database_url: str, watch_engine: Engine, key: str, dovecot: Dovecot, no_idle_dovecot: Dovecot
) -> None:
    user, login = random_user("watch"), new_login(dovecot)
    polled, polled_login = random_user("poll"), new_login(no_idle_dovecot)
    append(login, 2, tag="before")  # already there: the first session notices it
    register(watch_engine, key, user, login)
    register(watch_engine, key, polled, polled_login)
    # IDLE is ended and issued again every second: the storm below spans several rounds. The
    # server without IDLE is polled with NOOP.
    watcher = start_watcher(database_url, key, idle_renew="1", poll="0.3")
    try:
        assert wait_for("a start", lambda: events(watch_engine, user)) == [
            ("SyncStarted", "new_mail")
        ]
        wait_for("the session", lambda: connections(dovecot)[login.username] == 1)
        wait_for(
            "the polled session", lambda: connections(no_idle_dovecot)[polled_login.username] == 1
        )
        # No worker runs here: the task stays running while the mail keeps coming.
        # Dovecot tells an IDLE client of changes it sees within a moment together: spaced
        # out, each APPEND is a notice of its own.
        for n in range(4):
            append(login, 1, tag=f"storm{n}")
            time.sleep(0.7)
        wait_for(
            "the storm's notices",
            lambda: len([e for e in events(watch_engine, user) if e[0] == "SyncReused"]) >= 3,
        )
        time.sleep(1)  # any late notice lands before the count
        seen = Counter(kind for kind, _ in events(watch_engine, user))
        assert (seen["SyncStarted"], seen["FollowUpSyncQueued"]) == (1, 1), seen
        complete(database_url, user, started_task(watch_engine, user))
        tail = events(watch_engine, user)[-2:]
        assert tail == [("SyncCompleted", None), ("SyncStarted", "queued_follow_up")]

        assert events(watch_engine, polled) == []  # polled all along: nothing new, no start
        append(polled_login, 1, tag="polled")
        assert wait_for("the polled start", lambda: events(watch_engine, polled)) == [
            ("SyncStarted", "new_mail")
        ]
    finally:
        stop(watcher)


def test_watchers_divide_the_accounts_and_take_over_a_killed_ones(
    database_url: str, watch_engine: Engine, key: str, dovecot: Dovecot
) -> None:
    logins = {random_user("watch"): new_login(dovecot) for _ in range(8)}
    for user, login in logins.items():
        register(watch_engine, key, user, login)
    names = {login.username for login in logins.values()}
    first = start_watcher(database_url, key)
    second = start_watcher(database_url, key)
    try:

        def divided() -> dict[str, str] | None:
            held = holders(watch_engine)
            shares = Counter(held.values())
            fair = len(held) == 8 and sorted(shares.values()) == [4, 4]
            return held if fair else None

        held = wait_for("an even division", divided)
        sessions = wait_for(
            "a session per account",
            lambda: (c := connections(dovecot)) and all(c[n] == 1 for n in names) and c,
        )
        time.sleep(LEASE)  # and it stays so: no account watched twice
        assert all(connections(dovecot)[n] == 1 for n in names), sessions
        assert holders(watch_engine) == held

        first.send_signal(signal.SIGKILL)
        first.wait()
        killed_at = time.monotonic()
        survivor = next(w for w in set(held.values()) if w.split("-")[-2] == str(second.pid))
        wait_for(
            "the takeover",
            lambda: set(holders(watch_engine).values()) == {survivor},
            timeout=LEASE * 3 + 10,
        )
        took = time.monotonic() - killed_at
        wait_for("a session per account", lambda: all(connections(dovecot)[n] == 1 for n in names))
        assert took < LEASE + LEASE / 3 + 3, f"takeover took {took:.1f}s"
        orphan = next(user for user, watcher in held.items() if watcher != survivor)
        append(logins[orphan], 1, tag="after")
        wait_for(
            "the orphan's notice",
            lambda: ("SyncStarted", "new_mail") in events(watch_engine, orphan),
        )
    finally:
        stop(first)
        stop(second)
