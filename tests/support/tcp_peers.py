"""Loopback TCP servers that answer badly on purpose: a banner that is not IMAP, a greeting
dripped one byte at a time. Real sockets, so the client code under test runs unchanged."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Peer:
    """Accepts connections on 127.0.0.1; sends each the chunks, `pause` seconds apart."""

    def __init__(self, chunks: Iterator[bytes] | list[bytes], pause: float) -> None:
        self._chunks = list(chunks)
        self._pause = pause
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)  # so serve() sees close() soon
        self.port: int = self._listener.getsockname()[1]
        self.accepted = 0
        self._closed = threading.Event()
        self._cond = threading.Condition()

    def serve(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            conn.settimeout(None)
            with self._cond:
                self.accepted += 1
                self._cond.notify_all()
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                for chunk in self._chunks:
                    conn.sendall(chunk)
                    if self._closed.wait(self._pause):
                        return
                self._closed.wait()  # then say nothing more
            except OSError:
                return  # the client gave up

    def wait_for(self, connections: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.accepted >= connections, timeout)

    def close(self) -> None:
        self._closed.set()
        self._listener.close()


@contextmanager
def peer(chunks: list[bytes], pause: float = 0.0) -> Iterator[Peer]:
    server = Peer(chunks, pause)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.close()
        thread.join(5)


def dripping(greeting: bytes = b"* OK IMAP ready, slowly" * 100) -> list[bytes]:
    """The greeting one byte per chunk: every read succeeds, the line never ends soon."""
    return [greeting[i : i + 1] for i in range(len(greeting))]
