"""Server limits: connections per account and per host across workers (PostgreSQL advisory
locks), and servers that ask to slow down: Dovecot for its own limit and its [UNAVAILABLE];
a small IMAP-speaking server (tests/support/throttling_server.py) for [THROTTLED] and Microsoft's
"Suggested Backoff Time", which Dovecot cannot be made to say."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from sqlalchemy import Engine

from consumers.executors import TaskFailed, TaskSpec
from consumers.imap.executor import ImapExecutor, ImapSettings
from consumers.mail.accounts import AccountStore, ImapAccount
from consumers.mail.connection_slots import ConnectionSlots, SlotLimits, SlotsBusy, slots_engine
from consumers.mail.message_store import MessageStore
from consumers.mail.password_box import PasswordBox, new_key
from coordinator.dev.dovecot import Dovecot, start_dovecot
from tests.support.mailbox import append, imap
from tests.support.random_refs import random_user
from tests.support.throttling_server import throttling_server

KEY = new_key()
LOOPBACK = frozenset({"127.0.0.1"})
DOVECOT_LIMIT = 2  # Dovecot's own mail_max_userip_connections here
LOCAL_CONF = """\
protocol imap {{
  mail_max_userip_connections = {limit}
}}
# Logins with no passwd file of their own reach this one, which fails for the time being:
# Dovecot answers them `NO [UNAVAILABLE] Temporary authentication failure`.
passdb {{
  driver = checkpassword
  args = {script}
}}
"""
REFUSED_BY_DOVECOT = "Maximum number of connections from user+IP exceeded"


@pytest.fixture(scope="module")
def limited() -> Iterator[Dovecot]:
    root = Path(tempfile.mkdtemp(prefix="sync-test-limited-dovecot-"))
    script = root / "tempfail.sh"
    # checkpassword's "temporary failure", each call counted (read at once, unlike the log)
    script.write_text(f"#!/bin/sh\necho called >> {root}/tempfail.calls\nexit 111\n")
    script.chmod(0o755)
    (root / "local.conf").write_text(LOCAL_CONF.format(limit=DOVECOT_LIMIT, script=script))
    server = start_dovecot(root)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def log_lines(dovecot: Dovecot, text: str) -> int:
    """How often `text` is in Dovecot's log once what happened so far is written: its log
    process writes a little later, so a login of a marker user is waited for first."""
    marker, password = random_user("marker"), uuid4().hex
    dovecot.add_user(marker, password)
    with imap(ImapAccount(dovecot.host, dovecot.port, "none", marker, password)):
        pass
    log = dovecot.root / "dovecot.log"
    deadline = time.monotonic() + 10
    while f"Login: user=<{marker}>" not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, "Dovecot did not log the marker's login"
        time.sleep(0.05)
    return log.read_text(errors="replace").count(text)


def tempfail_calls(dovecot: Dovecot) -> int:
    """How often the failing passdb was asked so far."""
    calls = dovecot.root / "tempfail.calls"
    return calls.read_text().count("called") if calls.exists() else 0


def register(engine: Engine, account: ImapAccount) -> str:
    user = random_user()
    AccountStore(engine, PasswordBox(KEY)).put(user, account)
    return user


def worker(
    engine: Engine, per_account: int = 2, settings: ImapSettings | None = None
) -> ImapExecutor:
    """An executor as one worker process has it: its own way to the slots."""
    url = engine.url.render_as_string(hide_password=False)
    slots = ConnectionSlots(slots_engine(url), SlotLimits(per_account=per_account, wait_seconds=20))
    settings = settings or ImapSettings(
        allowed_hosts=LOOPBACK, batch_size=4, report_every_seconds=0
    )
    return ImapExecutor(
        AccountStore(engine, PasswordBox(KEY)), MessageStore(engine), settings, slots=slots
    )


def concurrent_syncs(engine: Engine, dovecot: Dovecot, per_account: int) -> tuple[int, list[Any]]:
    """Six users share one mailbox login, synced at once by two workers; each sync holds its
    connection a while. The most connections seen open at once, and each sync's outcome."""
    name, password = random_user("shared"), uuid4().hex
    dovecot.add_user(name, password)
    account = ImapAccount(dovecot.host, dovecot.port, "none", name, password)
    append(account, 8)
    users = [register(engine, account) for _ in range(6)]
    workers = [worker(engine, per_account), worker(engine, per_account)]
    open_now, most, lock = set(), [0], threading.Lock()

    def sync(n: int) -> Any:
        def report(percent: float, stats: dict[str, Any]) -> None:
            with lock:
                open_now.add(n)
                most[0] = max(most[0], len(open_now))
            time.sleep(0.15)  # the connection stays open meanwhile

        try:
            return workers[n % 2].run(TaskSpec(users[n], "t", "full"), report, threading.Event())
        except TaskFailed as failed:
            return failed
        finally:
            with lock:
                open_now.discard(n)

    with ThreadPoolExecutor(len(users)) as pool:
        outcomes = list(pool.map(sync, range(len(users))))
    return most[0], outcomes


def test_connections_per_account_stay_within_the_limit_across_workers(
    engine: Engine, limited: Dovecot
) -> None:
    before = log_lines(limited, REFUSED_BY_DOVECOT)
    most, outcomes = concurrent_syncs(engine, limited, per_account=2)
    assert all(isinstance(o, dict) and o["fetched"] == 8 for o in outcomes), outcomes
    assert most == 2  # the limit was reached, never passed
    assert log_lines(limited, REFUSED_BY_DOVECOT) == before  # Dovecot never had to refuse


def test_dovecot_refuses_a_connection_past_its_own_limit(engine: Engine, limited: Dovecot) -> None:
    """The check above can fail: with two connections of the login open, Dovecot refuses a
    third (`[LIMIT]`), and a sync allowed more than Dovecot takes reads it as "slow down" and
    gives up after its attempts."""
    name, password = random_user("crowded"), uuid4().hex
    limited.add_user(name, password)
    account = ImapAccount(limited.host, limited.port, "none", name, password)
    user = register(engine, account)
    settings = ImapSettings(allowed_hosts=LOOPBACK, connect_attempts=2, first_backoff_seconds=0.05)
    with imap(account) as one, imap(account) as two:
        one.select_folder("INBOX")  # both mail processes run, so Dovecot counts them
        two.select_folder("INBOX")
        with pytest.raises(TaskFailed, match=r"asked to slow down: \[LIMIT\] Maximum number"):
            worker(engine, per_account=4, settings=settings).run(
                TaskSpec(user, "t", "full"), lambda p, s: None, threading.Event()
            )


def test_a_host_cap_and_a_killed_workers_slots(shared_database_url: str) -> None:
    """Per host: a second account of a capped host waits for the first; a worker killed while
    holding a slot (SIGKILL, no clean-up) frees it at once: its database session ended."""
    from sqlalchemy.engine import make_url

    url = make_url(shared_database_url).set(drivername="postgresql+psycopg")
    capped = ConnectionSlots(
        slots_engine(url.render_as_string(hide_password=False)),
        SlotLimits(per_account=2, per_host=1, wait_seconds=0.5),
    )
    host = f"{random_user('host')}.example"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, url.render_as_string(hide_password=False), host],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        busy = "1 per host, SYNC_MAIL_MAX_CONNECTIONS_PER_HOST"
        with pytest.raises(SlotsBusy, match=busy), capped.held(host, "bob"):
            pass
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        started = time.monotonic()
        with capped.held(host, "bob"):
            assert time.monotonic() - started < 0.5
    finally:
        holder.kill()
        holder.wait(10)


HOLD = """
import sys, time
from consumers.mail.connection_slots import ConnectionSlots, SlotLimits, slots_engine
slots = ConnectionSlots(slots_engine(sys.argv[1]), SlotLimits(per_account=2, per_host=1))
with slots.held(sys.argv[2], "ann"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_unavailable_from_dovecot_is_waited_out_then_the_sync_completes(
    engine: Engine, limited: Dovecot
) -> None:
    name, password = random_user("late"), uuid4().hex
    user = register(engine, ImapAccount(limited.host, limited.port, "none", name, password))
    before = tempfail_calls(limited)
    settings = ImapSettings(allowed_hosts=LOOPBACK, first_backoff_seconds=1.0)
    result: list[Any] = []
    started = time.monotonic()
    thread = threading.Thread(
        target=lambda: result.append(
            worker(engine, settings=settings).run(
                TaskSpec(user, "t", "full"), lambda p, s: None, threading.Event()
            )
        )
    )
    thread.start()
    deadline = time.monotonic() + 10
    while tempfail_calls(limited) == before and time.monotonic() < deadline:
        time.sleep(0.02)  # until the first login was answered [UNAVAILABLE]
    limited.add_user(name, password)  # the login works from now on
    thread.join(15)
    assert result and result[0]["folders"] >= 1
    assert time.monotonic() - started >= 0.5  # it waited (half the first step at least)
    assert tempfail_calls(limited) == before + 1  # one refused attempt, then one that worked


def test_unavailable_that_lasts_fails_after_the_attempts_without_hammering(
    engine: Engine, limited: Dovecot
) -> None:
    name, before = random_user("never"), tempfail_calls(limited)
    user = register(engine, ImapAccount(limited.host, limited.port, "none", name, "pw"))
    settings = ImapSettings(allowed_hosts=LOOPBACK, connect_attempts=3, first_backoff_seconds=0.1)
    with pytest.raises(TaskFailed) as failed:
        worker(engine, settings=settings).run(
            TaskSpec(user, "t", "full"), lambda p, s: None, threading.Event()
        )
    assert "asked to slow down: [UNAVAILABLE] Temporary authentication failure" in str(failed.value)
    assert "still so after 3 tries" in str(failed.value)
    assert tempfail_calls(limited) == before + 3


def test_suggested_backoff_time_is_waited_and_a_longer_one_ends_the_sync(engine: Engine) -> None:
    answers = [
        "NO Request is throttled. Suggested Backoff Time: 1200 milliseconds",
        "NO [THROTTLED] Request is throttled. Suggested Backoff Time: 600000 milliseconds",
    ]
    with throttling_server(answers) as server:
        account = ImapAccount("127.0.0.1", server.port, "none", "ann", "pw")
        user = register(engine, account)
        settings = ImapSettings(allowed_hosts=LOOPBACK, throttle_max_wait_seconds=30)
        with pytest.raises(TaskFailed) as failed:
            worker(engine, settings=settings).run(
                TaskSpec(user, "t", "full"), lambda p, s: None, threading.Event()
            )
        connected = list(server.connected_at)
    reason = str(failed.value)
    assert reason.startswith(f"the IMAP server at 127.0.0.1:{server.port} asked to slow down")
    assert "600000 milliseconds" in reason and "SYNC_MAIL_THROTTLE_MAX_WAIT_SECONDS" in reason
    assert len(connected) == 2  # no hammering: one more try, after the time it named
    # The time it named, not a backoff's half second, nor 1200 read as seconds.
    assert 1.2 <= connected[1] - connected[0] < 10
