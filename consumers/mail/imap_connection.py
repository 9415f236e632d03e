"""Logging in to an IMAP server, with what went wrong said the way a person can act on it."""

from __future__ import annotations

import contextlib
import imaplib
import ssl
import time
from collections.abc import Callable

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from consumers.mail import oauth2_login
from consumers.mail.accounts import ImapAccount
from consumers.mail.address_policy import HostRefused, resolve
from consumers.mail.backoff import Backoff
from consumers.mail.imap_errors import LoginRefused, MailProblem, TlsFailed, Unreachable
from consumers.mail.pinned_client import Deadline, PinnedClient
from consumers.mail.throttling import Throttled, throttled
from consumers.mail.tls_policy import (
    PlaintextRefused,
    client_context,
    refuse_plaintext,
    tls_failure,
)

__all__ = [
    "HostRefused",
    "LoginRefused",
    "MailProblem",
    "PlaintextRefused",
    "Throttled",
    "TlsFailed",
    "Unreachable",
]
NOT_IMAP = "the server did not answer as an IMAP server"


def connect(
    account: ImapAccount,
    *,
    allowed_hosts: frozenset[str],
    attempts: int = 3,
    timeout: float = 30.0,
    first_backoff: float = 0.5,
    max_backoff: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    deadline: Deadline | None = None,
    tls: ssl.SSLContext | None = None,
) -> IMAPClient:
    """A logged-in client; connection failures are retried `attempts` times (backoff capped
    and jittered, mail.backoff), others are not. A server that answers "slow down" or "try
    later" (mail.throttling) ends the attempt with Throttled, for the caller to wait.

    The host is resolved once and must pass the address policy (HostRefused otherwise);
    `security: none` needs the host listed (PlaintextRefused). Certificates are verified
    with `tls` (consumers.mail.tls_policy.client_context; the system's roots when None).
    """
    address = resolve(account.host, account.port, allowed_hosts)
    refuse_plaintext(account.host, account.port, account.security, allowed_hosts)
    context = tls or client_context()
    backoff = Backoff(first=first_backoff, cap=max_backoff)
    for attempt in range(1, attempts + 1):
        try:
            client = _open(account, address, timeout, deadline, context)
        except ssl.SSLError as error:
            raise tls_failure(error, account.host, account.address()) from None
        except (OSError, imaplib.IMAP4.error) as error:
            slow_down = isinstance(error, imaplib.IMAP4.error) and throttled(
                _said(error), account.address()
            )
            if slow_down:  # a greeting of `* BYE [UNAVAILABLE] ...`
                raise slow_down from None
            if attempt == attempts:
                # A non-IMAP greeting is never echoed: it could be any internal service's banner.
                said = NOT_IMAP if isinstance(error, imaplib.IMAP4.error) else _said(error)
                raise Unreachable(
                    f"IMAP server at {account.address()} unreachable after {attempts} "
                    f"attempts: {said}"
                ) from None
            sleep(backoff.next_delay())
            continue
        return _login(client, account)
    raise AssertionError("unreachable")  # the loop returns or raises


def _open(
    account: ImapAccount,
    address: str,
    timeout: float,
    deadline: Deadline | None,
    context: ssl.SSLContext,
) -> IMAPClient:
    if account.security == "tls":
        return PinnedClient(
            account.host,
            account.port,
            address,
            ssl_context=context,
            timeout=timeout,
            deadline=deadline,
        )
    client = PinnedClient(
        account.host, account.port, address, ssl_context=None, timeout=timeout, deadline=deadline
    )
    if account.security == "starttls":
        try:
            client.starttls(context)
        except ssl.SSLError:
            with contextlib.suppress(OSError):  # the failed handshake may have closed it
                client.shutdown()
            raise
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
        if account.auth == "oauth2":  # `password` holds the access token
            oauth2_login.authenticate(client, account.username, account.password)
        else:
            _log_in(client, account.username, account.password)
    except LoginError as error:
        client.shutdown()
        slow_down = throttled(_said(error), account.address())
        if slow_down:  # `NO [UNAVAILABLE] Temporary authentication failure`, `[LIMIT]` ...
            raise slow_down from None
        raise LoginRefused(
            f"login refused by the IMAP server at {account.address()} for user "
            f"{account.username!r}: {_said(error)}"
        ) from None
    except (OSError, imaplib.IMAP4.error) as error:
        client.shutdown()
        slow_down = throttled(_said(error), account.address())
        if slow_down:
            raise slow_down from None
        raise Unreachable(
            f"connection to the IMAP server at {account.address()} lost while logging in: "
            f"{_said(error)}"
        ) from None
    return client


def _log_in(client: IMAPClient, username: str, password: str) -> None:
    """LOGIN with both arguments as quoted strings (RFC 3501); AUTHENTICATE PLAIN (RFC 4616,
    UTF-8) for what a quoted string cannot carry (non-ASCII, control characters)."""
    if _quotable(username) and _quotable(password):
        # imaplib quotes LOGIN's password itself but sends the user name as given: a space,
        # a quote or a trailing {n} in it broke the command.
        client.login(_quoted(username), password)
    else:
        client.plain_login(username, password)


def _quotable(text: str) -> bool:
    return all(" " <= char <= "~" for char in text)


def _quoted(text: str) -> str:
    """An IMAP quoted string: `\\` and `"` escaped, the rest as is (printable ASCII only)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def verify(
    account: ImapAccount,
    allowed_hosts: frozenset[str],
    timeout: float = 10.0,
    tls: ssl.SSLContext | None = None,
) -> None:
    """Log in once and check the named folders exist, all within `timeout` seconds in total.

    Raises MailProblem with the reason (HostRefused, PlaintextRefused before any connection).
    """
    with Deadline(timeout) as deadline:
        try:
            client = connect(
                account,
                allowed_hosts=allowed_hosts,
                attempts=1,
                timeout=timeout,
                deadline=deadline,
                tls=tls,
            )
            try:
                for folder in account.folders or ():
                    if not client.folder_exists(folder):
                        raise MailProblem(f"the IMAP server has no folder {folder!r}")
            finally:
                _quietly_logout(client)
        except (MailProblem, OSError, imaplib.IMAP4.error, IMAPClientError) as error:
            if deadline.expired:
                raise MailProblem(
                    f"the IMAP server at {account.address()} did not complete the login and "
                    f"folder check within {timeout:g} s"
                ) from None
            if isinstance(error, MailProblem):
                raise
            raise Unreachable(
                f"connection to the IMAP server at {account.address()} lost during the check: "
                f"{_said(error)}"
            ) from None


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
