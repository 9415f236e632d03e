"""A small IMAP-speaking server that logs anyone in and then answers every command the way a
throttled Exchange Online or Yahoo server does. Dovecot cannot be made to say `[THROTTLED]` or
Microsoft's "Suggested Backoff Time", so the tests that need those words use this instead."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class ThrottlingServer:
    """Connection n (from 0) is answered with `answers[min(n, len - 1)]` after its LOGIN."""

    def __init__(self, answers: list[str]) -> None:
        self._answers = answers
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self.connected_at: list[float] = []  # monotonic time of each connection
        self._closed = threading.Event()

    def serve(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connected_at.append(time.monotonic())
            answer = self._answers[min(len(self.connected_at), len(self._answers)) - 1]
            threading.Thread(target=self._talk, args=(conn, answer), daemon=True).start()

    def _talk(self, conn: socket.socket, answer: str) -> None:
        with conn, conn.makefile("rb") as lines:
            conn.sendall(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n")
            for line in lines:
                tag, _, rest = line.decode("ascii", "replace").strip().partition(" ")
                command = rest.split(" ", 1)[0].upper()
                if command == "CAPABILITY":
                    conn.sendall(f"* CAPABILITY IMAP4rev1\r\n{tag} OK done\r\n".encode())
                elif command == "LOGIN":
                    conn.sendall(f"{tag} OK logged in\r\n".encode())
                elif command == "LOGOUT":
                    conn.sendall(f"* BYE bye\r\n{tag} OK done\r\n".encode())
                    return
                else:
                    conn.sendall(f"{tag} {answer}\r\n".encode())

    def close(self) -> None:
        self._closed.set()
        self._listener.close()


@contextmanager
def throttling_server(answers: list[str]) -> Iterator[ThrottlingServer]:
    server = ThrottlingServer(answers)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.close()
        thread.join(5)
