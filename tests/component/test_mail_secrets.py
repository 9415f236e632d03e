"""Mail secrets stay out of reprs and readable files; a bad SYNC_MAIL_KEY stops the API at start."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from consumers.mail.accounts import ImapAccount
from coordinator.api.app import create_app
from coordinator.dev.dev_mail import kept_secret
from tests.integration.app_harness import settings_for

NOWHERE = "postgresql+psycopg://nobody@127.0.0.1:1/none"


def test_an_account_s_repr_leaves_the_password_out() -> None:
    account = ImapAccount("mail.example", 993, "tls", "ann", "hunter2-secret")
    assert "hunter2-secret" not in repr(account) and "ann" in repr(account)


def test_a_malformed_mail_key_stops_the_api_when_it_is_created() -> None:
    with pytest.raises(SystemExit, match="SYNC_MAIL_KEY must be Fernet keys"):
        create_app(settings_for(NOWHERE, mail_key="not-a-fernet-key"))


def test_a_kept_secret_is_created_private_and_then_kept(tmp_path: Path) -> None:
    path = tmp_path / "mail_key"
    assert kept_secret(path, "first\n") == "first"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert kept_secret(path, "second") == "first"
