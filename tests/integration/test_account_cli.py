"""`syncctl accounts`: an operator registers, reads and removes a user's account."""

from __future__ import annotations

import io
import json

import pytest

from consumers.mail.password_box import new_key
from coordinator.cli import main
from coordinator.dev.dovecot import Dovecot
from tests.support.mailbox import new_login
from tests.support.random_refs import random_user


def test_set_show_delete(
    shared_database_url: str,
    dovecot: Dovecot,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SYNC_DATABASE_URL", shared_database_url)
    monkeypatch.setenv("SYNC_MAIL_KEY", new_key())
    monkeypatch.setenv("SYNC_MAIL_ALLOWED_HOSTS", "127.0.0.1")  # the test Dovecot
    user, login = random_user(), new_login(dovecot)
    where = ["--host", login.host, "--port", str(login.port), "--security", "none"]
    command = ["accounts", "set", user, *where, "--username", login.username, "--verify"]
    monkeypatch.setattr("sys.stdin", io.StringIO("wrong\n"))
    assert main([*command, "--password-stdin"]) == 1
    assert "AUTHENTICATIONFAILED" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO(login.password + "\n"))
    assert main([*command, "--password-stdin", "--folder", "INBOX"]) == 0
    capsys.readouterr()
    assert main(["accounts", "show", user]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["username"] == login.username and shown["folders"] == ["INBOX"]
    assert "password" not in shown
    assert main(["accounts", "delete", user]) == 0
    assert main(["accounts", "show", user]) == 1
