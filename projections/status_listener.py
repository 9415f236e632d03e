"""One LISTEN connection per API process: which users' status rows the projector committed."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg

from core.database import libpq_url
from projections import status_notices

log = logging.getLogger("coordinator.status_listener")
WAIT_SECONDS = 0.5  # how long one wait for a notice lasts; bounds how long stop takes


class StatusListener:
    """A thread that LISTENs and hands each drained set of changed user ids to `on_change`.

    `on_change(None)` means "anything may have changed": after (re)connecting, notices sent
    while nobody listened are lost. Between notices `on_change(set())` is called every
    WAIT_SECONDS, so whoever reads the rows can retry a read that failed.
    """

    def __init__(
        self,
        sqlalchemy_url: str,
        on_change: Callable[[set[str] | None], None],
        max_backoff_seconds: float = 10.0,
    ) -> None:
        self._url = libpq_url(sqlalchemy_url)
        self._on_change = on_change
        self._max_backoff = max_backoff_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="status-listener", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(WAIT_SECONDS * 4)

    def _run(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._url, autocommit=True, connect_timeout=3) as conn:
                    conn.execute(f"LISTEN {status_notices.CHANNEL}")
                    backoff = 0.2
                    self._on_change(None)
                    self._listen(conn)
            except psycopg.Error as error:
                log.warning("status listener lost the database (%r); retrying", error)
                self._stop.wait(backoff)
                backoff = min(self._max_backoff, backoff * 2)
            except Exception:
                # A bug in on_change must not end live status for the whole process.
                log.exception("status listener step failed; reconnecting")
                self._stop.wait(1.0)

    def _listen(self, conn: psycopg.Connection[object]) -> None:
        while not self._stop.is_set():
            users: set[str] = set()
            for notice in conn.notifies(timeout=WAIT_SECONDS, stop_after=1):
                users.update(status_notices.decode(notice.payload))
            # Commits arrive in bursts: one read of the rows serves all queued notices.
            for notice in conn.notifies(timeout=0.0):
                users.update(status_notices.decode(notice.payload))
            self._on_change(users)
