"""Big mailboxes for the mail benchmark, written as maildir files (APPEND of 40,000 is slow)."""

from __future__ import annotations

import os
import random
import time

from imapclient import IMAPClient

from consumers.mail.accounts import ImapAccount
from coordinator.dev.dovecot import Dovecot

WORDS = ("sync", "mail", "folder", "report", "meeting", "invoice", "draft", "build", "notes")


def message(n: int, rng: random.Random) -> bytes:
    """A plain-text message of 1-8 KB, headers like real mail's."""
    body_words = rng.randint(150, 1200)
    body = " ".join(rng.choice(WORDS) for _ in range(body_words))
    lines = [body[i : i + 76] for i in range(0, len(body), 76)]
    return (
        f"From: Sender {n % 97} <sender{n % 97}@example.org>\r\n"
        f"To: bench@example.org\r\n"
        f"Subject: {rng.choice(WORDS)} {rng.choice(WORDS)} #{n}\r\n"
        f"Date: Thu, 01 Jan 2026 10:00:00 +0000\r\n"
        f"Message-ID: <bench-{n}@example.org>\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n" + "\r\n".join(lines) + "\r\n"
    ).encode()


def seed_maildir(dovecot: Dovecot, login: str, count: int) -> ImapAccount:
    """A login whose INBOX holds `count` messages, then indexed by one SELECT and FETCH."""
    password = os.urandom(8).hex()
    dovecot.add_user(login, password)
    cur = dovecot.maildir(login) / "cur"
    for sub in ("cur", "new", "tmp"):
        (dovecot.maildir(login) / sub).mkdir(exist_ok=True)
        os.chown(dovecot.maildir(login) / sub, dovecot.uid, dovecot.gid)
    rng = random.Random(count)
    start = int(time.time()) - count
    for n in range(count):
        path = cur / f"{start + n}.M{n}P1.bench:2,S"
        path.write_bytes(message(n, rng))
        os.utime(path, (start + n, start + n))  # INTERNALDATE: one second apart
        os.chown(path, dovecot.uid, dovecot.gid)
    account = ImapAccount(dovecot.host, dovecot.port, "none", login, password)
    client = IMAPClient(account.host, account.port, ssl=False, timeout=600)
    client.login(login, password)
    client.select_folder("INBOX", readonly=True)
    uids = client.search("ALL")
    for start in range(0, len(uids), 5000):  # Dovecot builds its index and cache now
        client.fetch(uids[start : start + 5000], ["RFC822.SIZE", "INTERNALDATE"])
    client.logout()
    return account
