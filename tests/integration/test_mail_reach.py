"""Where the API and the worker may connect for a user's account, and for how long at most."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from consumers.executors import TaskFailed, TaskSpec
from consumers.imap.executor import ImapExecutor, ImapSettings
from consumers.mail.accounts import AccountStore
from consumers.mail.address_policy import HostRefused, resolve
from consumers.mail.message_store import MessageStore
from consumers.mail.password_box import PasswordBox, new_key
from consumers.mail.pinned_client import PinnedClient
from coordinator.api.mail_deps import CHECKS_AT_ONCE
from coordinator.dev.dovecot import Dovecot
from tests.integration.app_harness import bearer, running_app, settings_for, user_token
from tests.support.mailbox import new_login
from tests.support.random_refs import random_user
from tests.support.tcp_peers import dripping, peer

KEY = new_key()
REFUSED = [
    "127.0.0.1",
    "127.8.9.10",
    "::1",
    "localhost",
    "10.1.2.3",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.169.254",
    "fe80::1",
    "fc00::1",
    "fd12:3456::1",
    "224.0.0.1",
    "ff02::1",
    "0.0.0.0",
    "::",
    "::ffff:10.0.0.1",
    "100.64.0.1",
]


@pytest.fixture(scope="module")
def client(shared_database_url: str) -> Iterator[TestClient]:
    settings = settings_for(shared_database_url, mail_key=KEY, mail_allowed_hosts="127.0.0.1")
    with running_app(settings) as client:
        yield client


def account_body(host: str, port: int = 143, **changes: Any) -> dict[str, Any]:
    return {
        "host": host,
        "port": port,
        "security": "none",
        "username": "ann",
        "password": "pw",
        **changes,
    }


@pytest.mark.parametrize("host", REFUSED)
def test_an_unlisted_host_leading_to_a_non_public_address_is_refused(host: str) -> None:
    with pytest.raises(HostRefused, match="does not resolve to a public address"):
        resolve(host, 143, frozenset())


def test_public_addresses_and_listed_hosts_pass() -> None:
    assert resolve("93.184.216.34", 993, frozenset()) == "93.184.216.34"
    assert resolve("2606:4700::1111", 993, frozenset()) == "2606:4700::1111"
    assert resolve("127.0.0.1", 143, frozenset({"127.0.0.1"})) == "127.0.0.1"
    assert resolve("LocalHost", 143, frozenset({"localhost"})) in {"127.0.0.1", "::1"}
    with pytest.raises(HostRefused, match="is not one this service may connect to"):
        resolve("93.184.216.34", 993, frozenset({"mail.example"}))
    with pytest.raises(HostRefused, match="cannot be resolved"):
        resolve("no-such-host.invalid", 993, frozenset())


def test_the_api_refuses_private_addresses_without_connecting(shared_database_url: str) -> None:
    with (
        peer([b"* OK IMAP\r\n"]) as server,
        running_app(settings_for(shared_database_url, mail_key=KEY)) as open_app,
    ):
        for host in ("127.0.0.1", "localhost", "10.0.0.1", "169.254.169.254"):
            for verify in ("true", "false"):
                answer = open_app.put(
                    f"/accounts/imap?verify={verify}",
                    json=account_body(host, server.port),
                    headers=bearer(user_token(random_user())),
                )
                assert answer.status_code == 422, answer.text
                assert answer.json()["type"].endswith("mail-host-not-allowed")
                assert "SYNC_MAIL_ALLOWED_HOSTS" in answer.json()["detail"]
                assert host == "127.0.0.1" or "127.0.0.1" not in answer.text  # no address said
        assert server.accepted == 0


def test_the_worker_refuses_an_account_registered_before_the_rule(
    engine: Engine, dovecot: Dovecot
) -> None:
    user, login = random_user(), new_login(dovecot)
    accounts = AccountStore(engine, PasswordBox(KEY))
    accounts.put(user, login)  # stored as an earlier release, or the CLI, would have
    executor = ImapExecutor(accounts, MessageStore(engine), ImapSettings())
    with pytest.raises(TaskFailed, match="does not resolve to a public address"):
        executor.run(TaskSpec(user, "t", "full"), lambda p, s: None, threading.Event())


def test_a_non_imap_banner_is_never_echoed(client: TestClient) -> None:
    banner = b"SSH-2.0-OpenSSH_9.6 internal-build-host-secret\r\n"
    with peer([banner]) as server:
        answer = client.put(
            "/accounts/imap?verify=true",
            json=account_body("127.0.0.1", server.port),
            headers=bearer(user_token(random_user())),
        )
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert "did not answer as an IMAP server" in detail
    assert "SSH" not in answer.text and "secret" not in answer.text


def test_the_connection_goes_to_the_resolved_address_and_keeps_the_name(dovecot: Dovecot) -> None:
    login = new_login(dovecot)
    # The name does not resolve at all: only the pinned address can have been used.
    client = PinnedClient(
        "imap.example.invalid", login.port, "127.0.0.1", ssl_context=None, timeout=5
    )
    try:
        assert client.host == "imap.example.invalid"
        client.login(login.username, login.password)
        assert client.folder_exists("INBOX")
    finally:
        client.logout()


def test_a_dripping_server_is_cut_at_the_deadline_and_health_answers_meanwhile(
    client: TestClient,
) -> None:
    users = [random_user("drip") for _ in range(CHECKS_AT_ONCE)]

    def check(user: str) -> tuple[float, Any]:
        started = time.monotonic()
        answer = client.put(
            "/accounts/imap?verify=true",
            json=account_body("127.0.0.1", server.port),
            headers=bearer(user_token(user)),
        )
        return time.monotonic() - started, answer

    with peer(dripping(), pause=0.5) as server, ThreadPoolExecutor(len(users)) as pool:
        running = [pool.submit(check, user) for user in users]
        assert server.wait_for(len(users), timeout=20)
        health = client.get("/healthz")
        assert health.status_code == 200
        again = client.put(
            "/accounts/imap?verify=true",
            json=account_body("127.0.0.1", server.port),
            headers=bearer(user_token(users[0])),
        )
        assert again.status_code == 429 and again.json()["type"].endswith("mail-check-busy")
        assert "already running" in again.json()["detail"] and again.headers["Retry-After"]
        other = client.put(
            "/accounts/imap?verify=true",
            json=account_body("127.0.0.1", server.port),
            headers=bearer(user_token(random_user())),
        )
        assert other.status_code == 429 and "too many" in other.json()["detail"]
        results = [future.result(timeout=60) for future in running]
    for seconds, answer in results:
        assert answer.status_code == 422, answer.text
        assert "did not complete the login and folder check within 10 s" in answer.json()["detail"]
        assert seconds < 30  # bounded by the 10 s deadline, not by the server's pace
