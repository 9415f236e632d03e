"""`syncctl dev`'s mail: a private Dovecot with a seeded demo mailbox, registered for the demo user.

Without Dovecot installed, dev says what to install and the worker runs the `demo` executor.
"""

from __future__ import annotations

import os
import secrets
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

from imapclient import IMAPClient

from consumers.mail.accounts import AccountStore, ImapAccount
from consumers.mail.password_box import PasswordBox, new_key
from coordinator.dev.dovecot import INSTALL_HINT, dovecot_binary, start_dovecot
from coordinator.dev.embedded import free_port, port_is_free
from core.database import make_engine
from core.settings import Settings

DEMO_LOGIN = "demo"
SUBJECTS = (
    "Welcome to your mailbox",
    "Quarterly report draft",
    "Lunch on Friday?",
    "Your invoice is ready",
    "Re: project timeline",
    "Build failed on main",
    "Photos from the trip",
    "Meeting notes",
)


def kept_secret(path: Path, make: str) -> str:
    """A value generated once and kept (mode 600) in the data dir."""
    try:
        # Created with its final mode: the secret is never readable by others, even briefly.
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as kept:
        kept.write(make)
    return make.strip()


def start_dev_mail(
    settings: Settings,
    data_dir: Path,
    database_url: str,
    user_id: str,
    env: dict[str, str],
    cleanup: ExitStack,
) -> str | None:
    """Set the mail key in `env`; start Dovecot and select the imap executor when possible.

    Returns a line describing the mailbox, or None when the worker keeps the demo executor.
    """
    key = settings.mail_key.get_secret_value() or kept_secret(data_dir / "mail_key", new_key())
    env["SYNC_MAIL_KEY"] = key
    if os.environ.get("SYNC_WORKER_EXECUTOR", "imap") != "imap":
        return None  # the developer chose another executor
    if dovecot_binary() is None:
        print(f"Dovecot is not installed: the worker runs the demo executor ({INSTALL_HINT})")
        return None
    root = data_dir / "dovecot"
    root.mkdir(parents=True, exist_ok=True)
    kept_port = int(kept_secret(root / "port", str(free_port())))
    port = kept_port if port_is_free(kept_port) else free_port()
    server = start_dovecot(root, port)
    cleanup.callback(server.stop)
    password = kept_secret(root / "demo_password", secrets.token_urlsafe(16))
    server.add_user(DEMO_LOGIN, password)
    account = ImapAccount(server.host, port, "none", DEMO_LOGIN, password)
    # A loopback host is refused unless listed (address_policy.py): list this private one.
    listed = [h for h in settings.mail_allowed_hosts.split(",") if h.strip()]
    env["SYNC_MAIL_ALLOWED_HOSTS"] = ",".join([*listed, server.host])
    seeded = _seed(account)
    engine = make_engine(database_url, pool_size=1)
    try:
        AccountStore(engine, PasswordBox(key)).put(user_id, account)
    finally:
        engine.dispose()
    env["SYNC_WORKER_EXECUTOR"] = "imap"
    return (
        f"private Dovecot on 127.0.0.1:{port}: login {DEMO_LOGIN!r} ({seeded} messages), "
        f"registered as {user_id}'s IMAP account; the worker runs the imap executor"
    )


def _seed(account: ImapAccount) -> int:
    """A few dozen messages in INBOX and Work, once; returns how many the mailbox holds."""
    client = IMAPClient(account.host, account.port, ssl=False, timeout=10)
    try:
        client.login(account.username, account.password)
        if not client.folder_exists("Work"):
            client.create_folder("Work")
        total = 0
        for folder, count in (("INBOX", 40), ("Work", 12)):
            held = int(client.select_folder(folder)[b"EXISTS"])
            if held == 0:
                start = datetime.now(UTC) - timedelta(days=count)
                client.multiappend(
                    folder,
                    [
                        {
                            "msg": _message(folder, n, start + timedelta(days=n)),
                            "date": start + timedelta(days=n),
                            "flags": (b"\\Seen",) if n % 3 else (),
                        }
                        for n in range(count)
                    ],
                )
                held = count
            total += held
        return total
    finally:
        client.logout()


def _message(folder: str, n: int, sent: datetime) -> bytes:
    subject = SUBJECTS[n % len(SUBJECTS)]
    return (
        f"From: Colleague {n % 5} <colleague{n % 5}@example.org>\r\n"
        f"To: {DEMO_LOGIN}@example.org\r\n"
        f"Subject: {subject} ({folder.lower()} #{n})\r\n"
        f"Date: {sent.strftime('%a, %d %b %Y %H:%M:%S +0000')}\r\n"
        f"Message-ID: <dev-{folder.lower()}-{n}@example.org>\r\n\r\n"
        f"This is demo message {n} in {folder}.\r\n"
    ).encode()
