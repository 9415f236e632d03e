"""An IMAPClient that connects to an address resolved beforehand, under an optional deadline.

The host name is kept for TLS (SNI and certificate checks); the socket goes to the address the
policy accepted. A Deadline shuts the socket down when it expires, so a server that answers one
byte at a time cannot hold the caller past it (the socket timeout bounds each read only).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from types import TracebackType

from imapclient import IMAPClient, imap4, tls


class Deadline:
    """Shuts the sockets it watches down `seconds` after it is entered."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._timer.cancel()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


class PinnedClient(IMAPClient):  # type: ignore[misc]  # imapclient is untyped
    """IMAPClient(host, port, ...) whose socket connects to `address` instead of resolving."""

    def __init__(
        self,
        host: str,
        port: int,
        address: str,
        *,
        ssl_context: ssl.SSLContext | None,
        timeout: float,
        deadline: Deadline | None = None,
    ) -> None:
        self._pinned = address
        self._deadline = deadline
        super().__init__(
            host, port, ssl=ssl_context is not None, ssl_context=ssl_context, timeout=timeout
        )

    def _create_IMAP4(self) -> imap4.IMAP4WithTimeout | tls.IMAP4_TLS:
        timeout = self._timeout.connect
        if self.ssl:
            return _PinnedTls(self, self.host, self.port, self.ssl_context, timeout)
        return _PinnedPlain(self, self.host, self.port, timeout)

    def open_socket(self, timeout: float | None) -> socket.socket:
        sock = socket.create_connection((self._pinned, self.port), timeout)
        if self._deadline is not None:
            self._deadline.watch(sock)
        return sock


class _PinnedPlain(imap4.IMAP4WithTimeout):  # type: ignore[misc]
    def __init__(self, owner: PinnedClient, host: str, port: int, timeout: float | None) -> None:
        self._owner = owner
        super().__init__(host, port, timeout)

    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        return self._owner.open_socket(timeout if timeout is not None else self._timeout)


class _PinnedTls(tls.IMAP4_TLS):  # type: ignore[misc]
    def __init__(
        self,
        owner: PinnedClient,
        host: str,
        port: int,
        context: ssl.SSLContext | None,
        timeout: float | None,
    ) -> None:
        self._owner = owner
        super().__init__(host, port, context, timeout)

    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        sock = self._owner.open_socket(timeout if timeout is not None else self._timeout)
        wrapped: socket.socket = tls.wrap_socket(sock, self.ssl_context, self.host)
        return wrapped
