"""TLS and STARTTLS against Dovecot with certificates of the suite's own CA: verified through
SYNC_MAIL_CA_BUNDLE, and each bad certificate refused with a reason a person can act on;
plaintext only to listed hosts."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from consumers.executors import TaskFailed, TaskSpec
from consumers.imap.executor import ImapExecutor, ImapSettings
from consumers.mail.accounts import AccountStore, ImapAccount, Security
from consumers.mail.idle_session import SessionLost, Timing, open_session
from consumers.mail.message_store import MessageStore
from consumers.mail.password_box import PasswordBox, new_key
from consumers.mail.tls_policy import client_context
from tests.integration.app_harness import bearer, running_app, settings_for, user_token
from tests.support.mailbox import append
from tests.support.random_refs import random_user
from tests.support.tls_dovecot import (
    ADDRESSES,
    EXPIRED,
    GOOD,
    UNTRUSTED,
    WRONG_NAME,
    TlsDovecot,
    start_tls_dovecot,
)

KEY = new_key()
LISTED = frozenset(ADDRESSES)  # loopback: the operator lists them
PUBLIC = "93.184.216.34"  # passes the address rule; never connected to here


@pytest.fixture(scope="module")
def tls_dovecot() -> Iterator[TlsDovecot]:
    root = Path(tempfile.mkdtemp(prefix="sync-test-tls-dovecot-"))
    server = start_tls_dovecot(root)
    try:
        yield server
    finally:
        server.server.stop()
        shutil.rmtree(root, ignore_errors=True)


def run(
    engine: Engine, account: ImapAccount, ca_bundle: str, allowed: frozenset[str] = LISTED
) -> dict[str, Any]:
    accounts = AccountStore(engine, PasswordBox(KEY))
    user = random_user()
    accounts.put(user, account)
    settings = ImapSettings(allowed_hosts=allowed, ca_bundle=ca_bundle, connect_attempts=1)
    executor = ImapExecutor(accounts, MessageStore(engine), settings)
    return executor.run(TaskSpec(user, "t", "full"), lambda p, s: None, threading.Event())


def failure(engine: Engine, account: ImapAccount, ca_bundle: str) -> str:
    with pytest.raises(TaskFailed) as failed:
        run(engine, account, ca_bundle)
    return str(failed.value)


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_a_certificate_of_the_trusted_ca_syncs(
    engine: Engine, tls_dovecot: TlsDovecot, security: Security
) -> None:
    account = tls_dovecot.account(GOOD, security)
    plain = ImapAccount(GOOD, tls_dovecot.server.port, "none", account.username, account.password)
    append(plain, 3)
    stats = run(engine, account, str(tls_dovecot.ca.bundle))
    assert stats["fetched"] == 3


BAD = {
    WRONG_NAME: "is not valid for the name '127.0.0.2' (IP address mismatch",
    EXPIRED: "has expired (certificate has expired); the server's operator must renew it",
    UNTRUSTED: "is not signed by an authority this service trusts (unable to get local issuer",
}


@pytest.mark.parametrize("security", ["tls", "starttls"])
@pytest.mark.parametrize("address", list(BAD))
def test_each_bad_certificate_fails_with_its_own_reason(
    engine: Engine, tls_dovecot: TlsDovecot, address: str, security: Security
) -> None:
    account = tls_dovecot.account(address, security)
    reason = failure(engine, account, str(tls_dovecot.ca.bundle))
    assert reason.startswith(f"the certificate of the IMAP server at {account.address()} ")
    assert BAD[address] in reason


def test_without_the_bundle_the_systems_roots_do_not_know_the_suites_ca(
    engine: Engine, tls_dovecot: TlsDovecot
) -> None:
    reason = failure(engine, tls_dovecot.account(GOOD, "tls"), "")
    assert "not signed by an authority this service trusts" in reason
    assert "SYNC_MAIL_CA_BUNDLE" in reason


def test_verify_true_trusts_the_bundle_and_refuses_a_bad_certificate(
    shared_database_url: str, tls_dovecot: TlsDovecot
) -> None:
    settings = settings_for(
        shared_database_url,
        mail_key=KEY,
        mail_allowed_hosts=",".join(ADDRESSES),
        mail_ca_bundle=str(tls_dovecot.ca.bundle),
    )

    def put(account: ImapAccount) -> tuple[int, dict[str, str]]:
        fields = ("host", "port", "security", "username", "password")
        body = {k: getattr(account, k) for k in fields}
        answer = client.put(
            "/accounts/imap?verify=true", json=body, headers=bearer(user_token(random_user()))
        )
        return answer.status_code, answer.json()

    with running_app(settings) as client:
        assert put(tls_dovecot.account(GOOD, "tls"))[0] == 200
        assert put(tls_dovecot.account(GOOD, "starttls"))[0] == 200
        status, problem = put(tls_dovecot.account(EXPIRED, "tls"))
    assert status == 422 and problem["type"].endswith("mail-login-failed")
    assert "has expired" in problem["detail"]


def test_plaintext_is_refused_unless_the_host_is_listed(
    engine: Engine, shared_database_url: str
) -> None:
    account = ImapAccount(PUBLIC, 143, "none", "ann", "pw")
    body = {"host": PUBLIC, "port": 143, "username": "ann", "password": "pw"}
    with running_app(settings_for(shared_database_url, mail_key=KEY)) as client:
        headers = bearer(user_token(random_user()))
        refused = client.put("/accounts/imap", json={**body, "security": "none"}, headers=headers)
        saved = client.put("/accounts/imap", json={**body, "security": "tls"}, headers=headers)
    assert refused.status_code == 422 and refused.json()["type"].endswith("plaintext-refused")
    assert "unencrypted" in refused.json()["detail"] and saved.status_code == 200
    with pytest.raises(TaskFailed, match="SYNC_MAIL_ALLOWED_HOSTS"):
        run(engine, account, "", allowed=frozenset())  # the worker holds to it too


def test_a_ca_bundle_that_cannot_be_read_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is not a readable file"):
        client_context(str(tmp_path / "missing.pem"))
    (tmp_path / "empty.pem").write_text("no certificate here\n")
    with pytest.raises(ValueError, match="holds no PEM certificate"):
        client_context(str(tmp_path / "empty.pem"))


def test_the_watchers_idle_sessions_verify_with_the_same_bundle(tls_dovecot: TlsDovecot) -> None:
    """`syncctl watch` opens its own sessions: the same trust, the same reasons."""
    context = client_context(str(tls_dovecot.ca.bundle))
    timing = Timing(idle_renew=60, poll=60, timeout=5)

    async def open_and_close(account: ImapAccount) -> int | None:
        session = await open_session(account, account.host, timing, context)
        await session.close()
        return session.uidnext

    for security in ("tls", "starttls"):
        account = tls_dovecot.account(GOOD, security)
        assert asyncio.run(open_and_close(account)) == 1
        with pytest.raises(SessionLost, match="has expired"):
            asyncio.run(open_and_close(tls_dovecot.account(EXPIRED, security)))
