"""The whole system with the imap executor: a killed worker's sync resumes, failures are said."""

from __future__ import annotations

import signal
import time
from typing import Any

import httpx
from sqlalchemy import Engine, create_engine, text

from consumers.mail.accounts import ImapAccount
from consumers.mail.password_box import new_key
from coordinator.dev.dovecot import Dovecot
from tests.e2e.stack import Stack, running_stack
from tests.e2e.test_sync_lifecycle import ENDED, EVERYTHING, click, watch_until
from tests.support.mailbox import append, new_login
from tests.support.random_refs import random_user

MESSAGES = 3000


def register(stack: Stack, user: str, account: ImapAccount) -> None:
    answer = httpx.put(
        f"{stack.api.base_url}/accounts/imap",
        json={
            "host": account.host,
            "port": account.port,
            "security": account.security,
            "username": account.username,
            "password": account.password,
        },
        headers=stack.api.headers(user),
    )
    assert answer.status_code == 200, answer.text


def sync_to_the_end(stack: Stack, user: str) -> dict[str, Any]:
    """Click until a task ends other than expired (a worker still joining its group)."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        started = click(stack, user)
        final = watch_until(stack, user, lambda s: s["status"] in ENDED, timeout=60)[-1]
        if final["status"] != "expired":
            assert final["task_id"] == started["task_id"]
            return final
    raise AssertionError("no task ran to its end")


def stored(engine: Engine, user: str) -> list[str]:
    with engine.connect() as conn:
        return [
            r[0]
            for r in conn.execute(
                text("SELECT message_id FROM mail_messages WHERE user_id = :u"), {"u": user}
            )
        ]


def test_killed_worker_resumes_from_the_checkpoint_and_failures_are_said(
    database_url: str, kafka_bootstrap: str, dovecot: Dovecot
) -> None:
    engine = create_engine(database_url)
    user, login = random_user(), new_login(dovecot)
    ids = append(login, MESSAGES)
    with running_stack(
        database_url,
        kafka_bootstrap,
        components=EVERYTHING,
        worker_executor="imap",
        mail_key=new_key(),
        mail_allowed_hosts="127.0.0.1",  # the test Dovecot
        mail_batch_size="10",
        mail_report_every_seconds="0.2",
        reuse_window_seconds="5",  # a stalled worker on a busy machine keeps its task
        reaper_interval_seconds="0.5",
    ) as stack:
        warm_up = random_user("warm-up")
        register(stack, warm_up, login)
        assert sync_to_the_end(stack, warm_up)["status"] == "completed"

        register(stack, user, login)
        first = click(stack, user)
        deadline = time.monotonic() + 60
        while not stored(engine, user):
            assert time.monotonic() < deadline, "the sync stored nothing"
            time.sleep(0.02)
        stack.processes["work"].send_signal(signal.SIGKILL)
        stack.processes["work"].wait()
        before = len(stored(engine, user))
        assert 0 < before < MESSAGES, before  # killed mid-sync
        expired = watch_until(stack, user, lambda s: s["status"] == "expired", timeout=30)[-1]
        assert expired["task_id"] == first["task_id"]

        stack.start("work", "work")
        final = sync_to_the_end(stack, user)
        assert final["task_id"] != first["task_id"] and final["status"] == "completed", final
        stats = final["current_stats"]
        assert (stats["fetched"], stats["total"]) == (MESSAGES - before, MESSAGES - before)

        wrong = random_user("wrong")
        register(stack, wrong, ImapAccount(login.host, login.port, "none", login.username, "no"))
        failed = sync_to_the_end(stack, wrong)
    after = stored(engine, user)
    engine.dispose()
    assert sorted(after) == sorted(ids)  # each message exactly once
    assert failed["status"] == "failed"
    assert failed["error_message"].startswith("login refused by the IMAP server at"), failed
