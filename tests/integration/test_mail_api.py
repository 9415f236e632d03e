"""Mail accounts and synced messages over HTTP: the password stays sealed, users stay apart."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from consumers.executors import TaskSpec
from consumers.imap.executor import ImapExecutor, ImapSettings
from consumers.mail.accounts import AccountStore, ImapAccount
from consumers.mail.message_store import MessageStore
from consumers.mail.password_box import PasswordBox, new_key
from coordinator.dev.dovecot import Dovecot
from coordinator.dev.embedded import free_port
from tests.integration.app_harness import bearer, running_app, settings_for, user_token
from tests.support.mailbox import append, new_login
from tests.support.random_refs import random_user

KEY = new_key()
LOOPBACK = "127.0.0.1"  # the test Dovecot's host, listed as an operator would


@pytest.fixture(scope="module")
def client(shared_database_url: str) -> Iterator[TestClient]:
    with running_app(
        settings_for(shared_database_url, mail_key=KEY, mail_allowed_hosts=LOOPBACK)
    ) as client:
        yield client


def body(account: ImapAccount, **changes: Any) -> dict[str, Any]:
    fields = {
        "host": account.host,
        "port": account.port,
        "security": account.security,
        "username": account.username,
        "password": account.password,
        **changes,
    }
    return {k: v for k, v in fields.items() if v is not None}


def as_user(user: str) -> dict[str, str]:
    return bearer(user_token(user))


def sync(engine: Engine, user: str) -> None:
    executor = ImapExecutor(
        AccountStore(engine, PasswordBox(KEY)),
        MessageStore(engine),
        ImapSettings(allowed_hosts=frozenset({LOOPBACK})),
    )
    executor.run(TaskSpec(user, "t", "full"), lambda p, s: None, threading.Event())


def test_account_is_stored_sealed_and_read_back_without_password(
    client: TestClient, engine: Engine, dovecot: Dovecot
) -> None:
    user, account = random_user(), new_login(dovecot)
    put = client.put(
        "/accounts/imap?verify=true", json=body(account, folders=["INBOX"]), headers=as_user(user)
    )
    assert put.status_code == 200, put.text
    got = client.get("/accounts/imap", headers=as_user(user)).json()
    assert got["username"] == account.username and got["folders"] == ["INBOX"]
    assert "password" not in got and account.password not in put.text
    with engine.connect() as conn:
        sealed = conn.execute(
            text("SELECT password FROM mail_accounts WHERE user_id = :u"), {"u": user}
        ).scalar_one()
    assert account.password.encode() not in bytes(sealed)
    assert PasswordBox(KEY).open(bytes(sealed)) == account.password
    assert client.delete("/accounts/imap", headers=as_user(user)).status_code == 204
    assert client.get("/accounts/imap", headers=as_user(user)).status_code == 404
    assert client.delete("/accounts/imap", headers=as_user(user)).status_code == 404


def test_verify_answers_422_with_the_server_s_reason(client: TestClient, dovecot: Dovecot) -> None:
    user, account = random_user(), new_login(dovecot)
    answer = client.put(
        "/accounts/imap?verify=true", json=body(account, password="wrong"), headers=as_user(user)
    )
    assert answer.status_code == 422
    problem = answer.json()
    assert problem["type"].endswith("mail-login-failed")
    assert "AUTHENTICATIONFAILED" in problem["detail"]
    assert client.get("/accounts/imap", headers=as_user(user)).status_code == 404
    missing = client.put(
        "/accounts/imap?verify=true", json=body(account, folders=["Nope"]), headers=as_user(user)
    )
    assert missing.status_code == 422 and "no folder 'Nope'" in missing.json()["detail"]


@pytest.mark.parametrize(
    "change",
    [
        {"security": "ssl"},
        {"port": 0},
        {"host": "a b"},
        {"password": ""},
        {"password": "line\r\nbreak"},
        {"username": "x" * 400},
        {"folders": ["ok", "\x00"]},
        {"extra": 1},
    ],
)
def test_bad_account_input_is_a_422(
    client: TestClient, dovecot: Dovecot, change: dict[str, Any]
) -> None:
    account = new_login(dovecot)
    answer = client.put("/accounts/imap", json=body(account, **change), headers=as_user("u"))
    assert answer.status_code == 422 and answer.json()["errors"], answer.text


def test_messages_page_newest_first_and_users_never_see_each_other(
    client: TestClient, engine: Engine, dovecot: Dovecot
) -> None:
    alice, bob = random_user("alice"), random_user("bob")
    alice_login, bob_login = new_login(dovecot), new_login(dovecot)
    alice_ids = append(alice_login, 7, tag="alice") + append(
        alice_login, 2, folder="Work", tag="alice-work", start=100
    )
    append(bob_login, 4, tag="bob")
    for user, login in ((alice, alice_login), (bob, bob_login)):
        assert client.put("/accounts/imap", json=body(login), headers=as_user(user)).is_success
        sync(engine, user)
    seen, cursor = [], None
    while True:
        params = {"limit": 4, **({"cursor": cursor} if cursor else {})}
        page = client.get("/mail/messages", params=params, headers=as_user(alice)).json()
        seen += page["messages"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(m["message_id"] for m in seen) == sorted(alice_ids)
    received = [m["received_at"] for m in seen]
    assert received == sorted(received, reverse=True)
    work = client.get("/mail/messages?folder=Work", headers=as_user(alice)).json()["messages"]
    assert {m["folder"] for m in work} == {"Work"} and len(work) == 2
    folders = client.get("/mail/folders", headers=as_user(alice)).json()["folders"]
    assert {(f["folder"], f["messages"]) for f in folders} == {("INBOX", 7), ("Work", 2)}
    mine = client.get("/accounts/imap", headers=as_user(alice)).json()
    assert mine["username"] == alice_login.username
    bob_sees = client.get("/mail/messages", headers=as_user(bob)).json()["messages"]
    assert bob_sees and all(m["message_id"].startswith("<bob-") for m in bob_sees)


def crafted(at: Any, folder: Any, uid: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps([at, folder, uid]).encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "bm90LWpzb24=",  # not JSON
        crafted("2026-01-01T00:00:00+00:00", "\x00", 1),
        crafted("2026-01-01T00:00:00+00:00", "\ud800", 1),
        crafted("2026-01-01T00:00:00+00:00", "In\nbox", 1),
        crafted("2026-01-01T00:00:00+00:00", "", 1),
        crafted("2026-01-01T00:00:00+00:00", "x" * 201, 1),
        crafted("2026-01-01T00:00:00+00:00", 7, 1),
        crafted("2026-01-01T00:00:00", "INBOX", 1),
        crafted("2026-01-01T00:00:00+00:00", "INBOX", 0),
    ],
)
def test_a_cursor_this_api_did_not_make_is_a_422(client: TestClient, cursor: str) -> None:
    answer = client.get("/mail/messages", params={"cursor": cursor}, headers=as_user("u"))
    assert answer.status_code == 422, answer.text
    assert "cursor" in answer.json()["detail"]


def test_a_well_formed_cursor_pages_on(client: TestClient) -> None:
    cursor = crafted("2026-01-01T00:00:00+00:00", "Ärchiv/2026 ✓", 5)
    answer = client.get("/mail/messages", params={"cursor": cursor}, headers=as_user("u"))
    assert answer.status_code == 200 and answer.json()["messages"] == []


def test_without_a_mail_key_accounts_are_unavailable(shared_database_url: str) -> None:
    with running_app(settings_for(shared_database_url)) as bare:
        answer = bare.put(
            "/accounts/imap",
            json={"host": "h", "port": 1, "security": "none", "username": "u", "password": "p"},
            headers=as_user("u"),
        )
    assert answer.status_code == 503 and "SYNC_MAIL_KEY" in answer.json()["detail"]


def test_a_host_outside_the_allowed_ones_is_refused_before_any_connection(
    shared_database_url: str, dovecot: Dovecot
) -> None:
    settings = settings_for(shared_database_url, mail_key=KEY, mail_allowed_hosts="mail.example")
    with running_app(settings) as limited:
        answer = limited.put(
            "/accounts/imap?verify=true", json=body(new_login(dovecot)), headers=as_user("u")
        )
    assert answer.status_code == 422
    assert answer.json()["type"].endswith("mail-host-not-allowed")


def test_database_down_is_a_503_not_a_500() -> None:
    down = f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none"
    with running_app(settings_for(down, mail_key=KEY)) as app:
        answers = [
            app.get("/mail/folders", headers=as_user("u")),
            app.get("/mail/messages", headers=as_user("u")),
            app.get("/accounts/imap", headers=as_user("u")),
        ]
    assert [a.status_code for a in answers] == [503, 503, 503], [a.text for a in answers]
