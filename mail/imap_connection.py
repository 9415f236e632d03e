"""Logging in to an IMAP server, with what went wrong said the way a person can act on it."""

from __future__ import annotations

import imaplib
import ssl
import time
from collections.abc import Callable

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from mail.accounts import ImapAccount


class MailProblem(Exception):
    """The sync cannot go on; the message is the reason shown to the user."""


class LoginRefused(MailProblem):
    """The server answered and refused these credentials."""


class Unreachable(MailProblem):
    """No connection after the bounded retries."""


class TlsFailed(MailProblem):
    """The TLS handshake failed: wrong port, wrong security setting or a bad certificate."""


def connect(
    account: ImapAccount,
    *,
    attempts: int = 3,
    timeout: float = 30.0,
    first_backoff: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> IMAPClient:
    """A logged-in client; connection failures are retried `attempts` times, others are not."""
    delay = first_backoff
    for attempt in range(1, attempts + 1):
        try:
            client = _open(account, timeout)
        except ssl.SSLError as error:
            raise TlsFailed(
                f"TLS with the IMAP server at {account.address()} failed ({_said(error)}); "
                "check the port and the security setting (tls, starttls or none)"
            ) from None
        except (OSError, imaplib.IMAP4.error) as error:
            if attempt == attempts:
                raise Unreachable(
                    f"IMAP server at {account.address()} unreachable after {attempts} "
                    f"attempts: {_said(error)}"
                ) from None
            sleep(delay)
            delay *= 2
            continue
        return _login(client, account)
    raise AssertionError("unreachable")  # the loop returns or raises


def _open(account: ImapAccount, timeout: float) -> IMAPClient:
    context = ssl.create_default_context()
    if account.security == "tls":
        return IMAPClient(
            account.host, account.port, ssl=True, ssl_context=context, timeout=timeout
        )
    client = IMAPClient(account.host, account.port, ssl=False, timeout=timeout)
    if account.security == "starttls":
        try:
            client.starttls(context)
        except IMAPClientError as error:
            client.shutdown()
            raise TlsFailed(
                f"the IMAP server at {account.address()} refused STARTTLS ({_said(error)}); "
                "check the security setting"
            ) from None
    client.normalise_times = False  # keep INTERNALDATE's time zone
    return client


def _login(client: IMAPClient, account: ImapAccount) -> IMAPClient:
    client.normalise_times = False
    try:
        client.login(account.username, account.password)
    except LoginError as error:
        client.shutdown()
        raise LoginRefused(
            f"login refused by the IMAP server at {account.address()} for user "
            f"{account.username!r}: {_said(error)}"
        ) from None
    except (OSError, imaplib.IMAP4.error) as error:
        client.shutdown()
        raise Unreachable(
            f"connection to the IMAP server at {account.address()} lost while logging in: "
            f"{_said(error)}"
        ) from None
    return client


def verify(account: ImapAccount, timeout: float = 10.0) -> None:
    """Log in once and check the named folders exist; raises MailProblem with the reason."""
    client = connect(account, attempts=1, timeout=timeout)
    try:
        for folder in account.folders or ():
            if not client.folder_exists(folder):
                raise MailProblem(f"the IMAP server has no folder {folder!r}")
    finally:
        _quietly_logout(client)


def _quietly_logout(client: IMAPClient) -> None:
    try:
        client.logout()
    except (OSError, imaplib.IMAP4.error):
        client.shutdown()


def close(client: IMAPClient) -> None:
    """Log out, or just drop the connection if the server is gone."""
    _quietly_logout(client)


def _said(error: BaseException) -> str:
    """The server's or the system's own words, as text."""
    text = str(error) or type(error).__name__
    if text.startswith("b'") or text.startswith('b"'):
        text = text[2:-1]
    return text.strip()
