"""One watched INBOX on an asyncio loop: many of them share one thread and one selector.

    connect ─> greeting ─> [STARTTLS] ─> LOGIN ─> CAPABILITY ─> EXAMINE INBOX ─┐
      ┌──────────────────────────────────────────────────────────────────────┘
      ├─ IDLE advertised: IDLE ... DONE, issued again every `idle_renew` s (RFC 2177: < 29 min)
      └─ otherwise:       NOOP every `poll` s
    an untagged EXISTS, EXPUNGE or FETCH (a change) ─> on_change()

The session reads lines with asyncio streams; an idle connection costs a socket, its buffers
and a sleeping coroutine, no thread. Any failure raises SessionLost (or LoginRefused); the
watcher reconnects with backoff.
"""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from consumers.mail import oauth2_login
from consumers.mail.accounts import ImapAccount
from consumers.mail.imap_errors import LoginRefused
from consumers.mail.tls_policy import client_context, tls_failure

TAGGED = re.compile(rb"^(W\d+) (OK|NO|BAD)\b(.*)", re.DOTALL)
CHANGE = re.compile(rb"^\* \d+ (EXISTS|EXPUNGE|FETCH)\b", re.IGNORECASE)
UIDNEXT = re.compile(rb"\[UIDNEXT (\d+)\]", re.IGNORECASE)
LITERAL = re.compile(rb"\{(\d+)\}\r\n$")
LINE_LIMIT = 64 * 1024


class SessionLost(Exception):
    """The connection failed, timed out or the server answered out of turn."""


@dataclass(frozen=True)
class Timing:
    """How long the session waits for what."""

    idle_renew: float  # IDLE is ended and issued again this often
    poll: float  # NOOP interval without IDLE
    timeout: float  # longest wait for an answer to a command


def quotable(value: str) -> bool:
    """Printable ASCII: what an IMAP quoted string carries."""
    return all(" " <= char <= "~" for char in value)


def quoted(value: str) -> bytes:
    """An IMAP quoted string (printable ASCII only): `\\` and `"` escaped."""
    return b'"' + value.encode().replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


class InboxSession:
    """A logged-in connection with INBOX examined (read-only)."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timing: Timing
    ) -> None:
        self._reader, self._writer, self._timing = reader, writer, timing
        self._tags = 0
        self.capabilities: frozenset[str] = frozenset()
        self.uidnext: int | None = None

    async def line(self, timeout: float | None = None) -> bytes:
        """One response line (with any literal it announces folded in)."""
        try:
            async with asyncio.timeout(timeout if timeout is not None else self._timing.timeout):
                data = await self._reader.readuntil(b"\r\n")
                while (literal := LITERAL.search(data)) is not None:
                    data += await self._reader.readexactly(int(literal.group(1)))
                    data += await self._reader.readuntil(b"\r\n")
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as error:
            raise SessionLost(f"no answer from the server ({type(error).__name__})") from None
        except OSError as error:
            raise SessionLost(f"connection lost: {error}") from None
        return data

    async def command(
        self, *parts: bytes, on_untagged: Callable[[bytes], None] | None = None
    ) -> bytes:
        """Send a command, return its tagged answer; untagged lines go to on_untagged."""
        tag = self._send(b" ".join(parts))
        return await self._until_tagged(tag, on_untagged)

    def _send(self, text: bytes) -> bytes:
        self._tags += 1
        tag = b"W%d" % self._tags
        self._writer.write(tag + b" " + text + b"\r\n")
        return tag

    async def _until_tagged(self, tag: bytes, on_untagged: Callable[[bytes], None] | None) -> bytes:
        while True:
            data = await self.line()
            tagged = TAGGED.match(data)
            if tagged is None:
                if on_untagged is not None:
                    on_untagged(data)
                continue
            if tagged.group(1) != tag:
                raise SessionLost(f"answer for another command: {data[:80]!r}")
            return data

    async def login(self, account: ImapAccount) -> None:
        """LOGIN with quoted strings, or AUTHENTICATE PLAIN (RFC 4616, UTF-8) for what a quoted
        string cannot carry: the rule `consumers/mail/imap_connection.py` follows."""
        user, password = account.username, account.password
        if account.auth == "oauth2":  # `password` holds the access token
            answer = await self._bearer_login(user, password)
        elif quotable(user) and quotable(password):
            answer = await self.command(b"LOGIN", quoted(user), quoted(password))
        else:
            tag = self._send(b"AUTHENTICATE PLAIN")
            if not (await self.line()).startswith(b"+"):
                raise SessionLost("AUTHENTICATE PLAIN refused")
            secret = f"\0{user}\0{password}".encode()
            self._writer.write(base64.b64encode(secret) + b"\r\n")
            answer = await self._until_tagged(tag, None)
        if b" OK" not in answer[:8]:
            said = answer.split(b" ", 2)[-1].decode(errors="replace").strip()
            raise LoginRefused(
                f"login refused by the IMAP server at {account.address()} for user "
                f"{account.username!r}: {said}"
            )

    async def _bearer_login(self, user: str, token: str) -> bytes:
        """OAUTHBEARER, else XOAUTH2 (RFC 7628), as the server offers (as `oauth2_login.py`)."""
        await self.command(b"CAPABILITY", on_untagged=self._capabilities)
        offered = [m for m in ("OAUTHBEARER", "XOAUTH2") if f"AUTH={m}" in self.capabilities]
        if not offered:
            raise LoginRefused("the IMAP server offers neither OAUTHBEARER nor XOAUTH2")
        tag = self._send(b"AUTHENTICATE " + offered[0].encode())
        if not (await self.line()).startswith(b"+"):
            raise SessionLost(f"AUTHENTICATE {offered[0]} refused")
        response = oauth2_login.initial_response(offered[0], user, token)
        self._writer.write(base64.b64encode(response) + b"\r\n")
        answer = await self.line()
        if answer.startswith(b"+"):  # an error challenge: end the exchange, the NO follows
            self._writer.write(b"AQ==\r\n" if offered[0] == "OAUTHBEARER" else b"\r\n")
            return await self._until_tagged(tag, None)
        return answer if answer.startswith(tag) else await self._until_tagged(tag, None)

    def _capabilities(self, data: bytes) -> None:
        if data.upper().startswith(b"* CAPABILITY "):
            self.capabilities = frozenset(data[13:].decode().upper().split())

    async def examine_inbox(self) -> None:
        def seen(data: bytes) -> None:
            self._capabilities(data)
            found = UIDNEXT.search(data)
            if found:
                self.uidnext = int(found.group(1))

        await self.command(b"CAPABILITY", on_untagged=seen)
        answer = await self.command(b"EXAMINE INBOX", on_untagged=seen)
        if b" OK" not in answer[:8]:
            raise SessionLost(f"EXAMINE INBOX refused: {answer[:200]!r}")

    async def watch(self, on_change: Callable[[], None]) -> None:
        """IDLE (or poll) until the connection fails; on_change for every change seen."""

        def untagged(data: bytes) -> None:
            if CHANGE.match(data):
                on_change()

        while True:
            if "IDLE" in self.capabilities:
                await self._idle_round(untagged)
            else:
                await asyncio.sleep(self._timing.poll)
                await self.command(b"NOOP", on_untagged=untagged)

    async def _idle_round(self, untagged: Callable[[bytes], None]) -> None:
        tag = self._send(b"IDLE")
        while not (data := await self.line()).startswith(b"+"):
            if TAGGED.match(data):
                raise SessionLost(f"IDLE refused: {data[:200]!r}")
            untagged(data)
        loop = asyncio.get_running_loop()
        until = loop.time() + self._timing.idle_renew
        while (left := until - loop.time()) > 0:
            try:
                data = await self.line(timeout=left)
            except SessionLost:
                if self._reader.at_eof() or loop.time() < until:
                    raise
                break
            untagged(data)
        self._writer.write(b"DONE\r\n")
        await self._until_tagged(tag, untagged)

    async def close(self) -> None:
        """Log out if the server is still there; drop the connection either way."""
        try:
            self._send(b"LOGOUT")
            async with asyncio.timeout(1):
                await self._writer.drain()
        except (OSError, TimeoutError):
            pass
        self._writer.close()


async def open_session(
    account: ImapAccount, address: str, timing: Timing, tls: ssl.SSLContext | None = None
) -> InboxSession:
    """Connected to `address` (resolved and allowed beforehand), logged in, INBOX examined.

    Certificates are verified with `tls` (tls_policy.client_context: SYNC_MAIL_CA_BUNDLE or
    the system's roots), a failed check said as the worker says it."""
    context = (tls or client_context()) if account.security != "none" else None
    try:
        async with asyncio.timeout(timing.timeout):
            reader, writer = await asyncio.open_connection(
                address,
                account.port,
                ssl=context if account.security == "tls" else None,
                server_hostname=account.host if account.security == "tls" else None,
                limit=LINE_LIMIT,
            )
    except ssl.SSLError as error:
        raise SessionLost(str(tls_failure(error, account.host, account.address()))) from None
    except (OSError, TimeoutError) as error:
        raise SessionLost(f"cannot reach {account.address()}: {error}") from None
    session = InboxSession(reader, writer, timing)
    try:
        greeting = await session.line()
        if not greeting.startswith(b"* OK"):
            raise SessionLost("the server did not answer as an IMAP server")
        if account.security == "starttls":
            answer = await session.command(b"STARTTLS")
            if b" OK" not in answer[:8]:
                raise SessionLost(f"STARTTLS refused by {account.address()}")
            assert context is not None
            try:
                await writer.start_tls(context, server_hostname=account.host)
            except ssl.SSLError as error:
                raise SessionLost(
                    str(tls_failure(error, account.host, account.address()))
                ) from None
        await session.login(account)
        await session.examine_inbox()
    except BaseException:
        writer.close()
        raise
    return session
