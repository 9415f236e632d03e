"""Every IPv6 form carrying a non-public IPv4 address is refused by the API, the CLI and the
worker alike, given as an address or as a name that resolves to it."""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from consumers.executors import TaskFailed, TaskSpec
from consumers.imap.executor import ImapExecutor, ImapSettings
from consumers.mail import address_policy
from consumers.mail.accounts import AccountStore, ImapAccount
from consumers.mail.message_store import MessageStore
from consumers.mail.password_box import PasswordBox, new_key
from coordinator.cli import main
from tests.integration.app_harness import bearer, running_app, settings_for, user_token
from tests.support.random_refs import random_user

KEY = new_key()
REFUSED = "does not resolve to a public address"
# The probe's findings, and the other forms: NAT64 (well-known and local-use), compatible,
# 6to4, Teredo, translated, site-local.
FORMS = [
    "64:ff9b::7f00:1",
    "64:ff9b::a9fe:a9fe",
    "64:ff9b::a00:1",
    "64:ff9b:1::a00:1",
    "::7f00:1",
    "::127.0.0.1",
    "2002:7f00:1::",
    "2002:a9fe:a9fe::",
    "2001:0:4136:e378:8000:63bf:80ff:fffe",
    "::ffff:0:7f00:1",
    "fec0::1",
]
NAME = "mail.forms.test"  # resolves, through the policy's resolver, to the form under test


@pytest.fixture(scope="module")
def client(shared_database_url: str) -> Iterator[TestClient]:
    with running_app(settings_for(shared_database_url, mail_key=KEY)) as client:
        yield client


@pytest.fixture(params=["address", "name"])
def host_for(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The host to give for an address: the address itself, or a name that resolves to it."""
    if request.param == "address":
        return lambda address: address
    chosen: list[str] = []

    def lookup(host: str, port: int, **kind: Any) -> list[tuple[Any, ...]]:
        if host == NAME:
            return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (chosen[-1], port, 0, 0))]
        return socket.getaddrinfo(host, port, **kind)

    monkeypatch.setattr(address_policy, "lookup", lookup)

    def choose(address: str) -> str:
        chosen.append(address)
        return NAME

    return choose


def account(host: str) -> dict[str, Any]:
    return {"host": host, "port": 143, "security": "none", "username": "ann", "password": "pw"}


def test_the_api_refuses_every_form(client: TestClient, host_for: Any) -> None:
    for address in FORMS:
        for verify in ("false", "true"):
            answer = client.put(
                f"/accounts/imap?verify={verify}",
                json=account(host_for(address)),
                headers=bearer(user_token(random_user())),
            )
            assert answer.status_code == 422, (address, answer.text)
            assert answer.json()["type"].endswith("mail-host-not-allowed"), address
            assert REFUSED in answer.json()["detail"]


def test_syncctl_accounts_set_verify_refuses_every_form(
    shared_database_url: str,
    host_for: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SYNC_DATABASE_URL", shared_database_url)
    monkeypatch.setenv("SYNC_MAIL_KEY", KEY)
    user = random_user()
    for address in FORMS:
        where = ["--host", host_for(address), "--port", "143", "--security", "none"]
        monkeypatch.setattr("sys.stdin", io.StringIO("pw\n"))
        command = ["accounts", "set", user, *where, "--username", "ann", "--verify"]
        assert main([*command, "--password-stdin"]) == 1, address
        assert REFUSED in capsys.readouterr().err, address
    assert main(["accounts", "show", user]) == 1  # nothing was saved


def test_the_worker_refuses_every_form(engine: Engine, host_for: Any) -> None:
    accounts = AccountStore(engine, PasswordBox(KEY))
    executor = ImapExecutor(accounts, MessageStore(engine), ImapSettings(connect_attempts=1))
    for address in FORMS:
        user = random_user()
        accounts.put(user, ImapAccount(host_for(address), 143, "none", "ann", "pw"))
        with pytest.raises(TaskFailed, match=REFUSED):
            executor.run(TaskSpec(user, "t", "full"), lambda p, s: None, threading.Event())
