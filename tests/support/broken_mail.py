"""Real-world broken mail (spam, old clients) for the sync's tests, and its delivery to Dovecot.

The samples are files in `tests/fixtures/broken_mail/`; the 100 KB header line is made here
rather than kept in the repository. Delivery writes maildir files straight into the test
Dovecot, as a mail server's delivery agent would: APPEND refuses some of these (NUL bytes).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from consumers.mail.accounts import ImapAccount
from coordinator.dev.dovecot import Dovecot

SAMPLES = Path(__file__).parents[1] / "fixtures" / "broken_mail"
LONG_LINE_BYTES = 100 * 1024


def broken_samples() -> dict[str, bytes]:
    """File name -> bytes of every sample, and `long-header-line.eml` (bulk mail whose To: is
    one 100 KB line of addresses, and whose Subject is 6 KB of encoded words)."""
    found = {p.name: p.read_bytes() for p in sorted(SAMPLES.glob("*.eml"))}
    found["long-header-line.eml"] = (
        b"From: Bulk <bulk@spam.example>\r\nTo: "
        + b", ".join(b"user%06d@example.org" % n for n in range(LONG_LINE_BYTES // 24))
        + b"\r\nSubject: "
        + b"=?utf-8?B?w6k=?= " * 360
        + b"\r\nDate: Mon, 09 Mar 2026 10:00:00 +0000\r\nMessage-ID: <long@spam.example>\r\n"
        + b"\r\nx\r\n"
    )
    assert len(found["long-header-line.eml"]) > LONG_LINE_BYTES
    return found


def deliver(dovecot: Dovecot, account: ImapAccount, messages: list[bytes]) -> None:
    """Put the messages in the login's INBOX, in this order (their UIDs follow it)."""
    home = dovecot.maildir(account.username)
    for sub in ("cur", "new", "tmp"):
        (home / sub).mkdir(exist_ok=True)
        os.chown(home / sub, dovecot.uid, dovecot.gid)
    start = int(time.time())
    for n, data in enumerate(messages):
        path = home / "new" / f"{start}.M{n:06d}P{os.getpid()}.test"
        path.write_bytes(data)
        os.utime(path, (start + n, start + n))
        os.chown(path, dovecot.uid, dovecot.gid)
