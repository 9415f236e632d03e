"""Any login name and password reach the real Dovecot intact: LOGIN's arguments are quoted
strings (RFC 3501), and what a quoted string cannot carry goes by AUTHENTICATE PLAIN."""

from __future__ import annotations

from uuid import uuid4

import pytest

from consumers.mail.accounts import ImapAccount
from consumers.mail.imap_connection import LoginRefused, close, connect
from consumers.mail.password_box import new_key
from coordinator.dev.dovecot import Dovecot
from tests.integration.app_harness import bearer, running_app, settings_for, user_token
from tests.support.random_refs import random_user

LOOPBACK = frozenset({"127.0.0.1"})
# (login name, password): the name gets a random tail, so each test has its own login.
LOGINS = {
    "space and quote": ('ann "the" smith', 'pa ss"word'),
    "backslash": ("back\\slash", "pass\\word\\"),
    "braces and parentheses": ("{5}(x) %*", "(pw) {3}"),
    "non-ASCII": ("jörg müller", "pässwörd ü"),
}


def login_for(dovecot: Dovecot, name: str, password: str) -> ImapAccount:
    name = f"{name} {uuid4().hex[:8]}"
    dovecot.add_user(name, password)
    return ImapAccount(dovecot.host, dovecot.port, "none", name, password)


@pytest.mark.parametrize(("name", "password"), LOGINS.values(), ids=LOGINS.keys())
def test_a_login_name_with_any_printable_characters_logs_in(
    dovecot: Dovecot, name: str, password: str
) -> None:
    account = login_for(dovecot, name, password)
    client = connect(account, allowed_hosts=LOOPBACK, attempts=1, timeout=5)
    try:
        assert client.folder_exists("INBOX")
    finally:
        close(client)
    wrong = ImapAccount(account.host, account.port, "none", account.username, password + "x")
    with pytest.raises(LoginRefused, match="AUTHENTICATIONFAILED"):
        connect(wrong, allowed_hosts=LOOPBACK, attempts=1, timeout=5)


def test_the_api_verifies_a_login_with_a_space_and_a_quote(
    dovecot: Dovecot, shared_database_url: str
) -> None:
    account = login_for(dovecot, 'ann "the" smith', 'pa ss"word')
    body = {
        "host": account.host,
        "port": account.port,
        "security": "none",
        "username": account.username,
        "password": account.password,
    }
    settings = settings_for(shared_database_url, mail_key=new_key(), mail_allowed_hosts="127.0.0.1")
    with running_app(settings) as client:
        answer = client.put(
            "/accounts/imap?verify=true", json=body, headers=bearer(user_token(random_user()))
        )
    assert answer.status_code == 200, answer.text
    assert answer.json()["username"] == account.username
