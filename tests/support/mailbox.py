"""Mailboxes on the test Dovecot: a login of its own per test, messages seeded by APPEND."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from imapclient import IMAPClient

from consumers.mail.accounts import ImapAccount
from coordinator.dev.dovecot import Dovecot
from tests.support.random_refs import random_user

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def new_login(dovecot: Dovecot) -> ImapAccount:
    """A fresh Dovecot user and the account that logs in as it (plain IMAP on loopback)."""
    name, password = random_user("mail"), uuid4().hex
    dovecot.add_user(name, password)
    return ImapAccount(dovecot.host, dovecot.port, "none", name, password)


@contextmanager
def imap(account: ImapAccount) -> Iterator[IMAPClient]:
    client = IMAPClient(account.host, account.port, ssl=False, timeout=10)
    client.login(account.username, account.password)
    try:
        yield client
    finally:
        client.logout()


def message(n: int, tag: str = "m", body_bytes: int = 200) -> bytes:
    return (
        f"From: Sender {n} <sender{n}@example.org>\r\n"
        f"To: someone@example.org\r\n"
        f"Subject: {tag} message {n}\r\n"
        f"Date: Thu, 01 Jan 2026 10:00:00 +0000\r\n"
        f"Message-ID: <{tag}-{n}@example.org>\r\n\r\n" + "x" * body_bytes + "\r\n"
    ).encode()


def append(
    account: ImapAccount, count: int, folder: str = "INBOX", tag: str = "m", start: int = 0
) -> list[str]:
    """APPEND `count` messages (MULTIAPPEND, in chunks); returns their Message-IDs."""
    ids = []
    with imap(account) as client:
        if not client.folder_exists(folder):
            client.create_folder(folder)
        for first in range(start, start + count, 500):
            numbers = range(first, min(first + 500, start + count))
            msgs = [{"msg": message(n, tag), "date": T0 + timedelta(minutes=n)} for n in numbers]
            client.multiappend(folder, msgs)
            ids += [f"<{tag}-{n}@example.org>" for n in numbers]
    return ids


def new_uidvalidity(dovecot: Dovecot, account: ImapAccount) -> None:
    """INBOX gets a new UIDVALIDITY and keeps its UIDs, as after a restored or rebuilt index:
    the maildir's uidlist names another one and Dovecot's index is dropped."""
    home = dovecot.maildir(account.username)
    uidlist = home / "dovecot-uidlist"
    version, validity, rest = uidlist.read_text().split(" ", 2)
    uidlist.write_text(f"{version} V{int(validity[1:]) + 1000} {rest}")  # keeps its owner
    for index in home.glob("dovecot.index*"):
        index.unlink()
