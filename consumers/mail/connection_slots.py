"""How many IMAP connections the service holds open to one account, and to one server host,
across every worker: PostgreSQL session advisory locks, one per slot.

An account has `per_account` slots (key: host and login), a host `per_host` slots when that cap
is set. Taking a slot is `pg_try_advisory_lock` on one of them, held by a database connection
of its own (not the pool's) for as long as the IMAP connection lives. PostgreSQL releases the
locks when that session ends, so a worker killed mid-sync frees its slots at once, with no
lease to expire. Why locks rather than a table: docs/decisions/imap-connection-slots.md.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.pool import NullPool

from consumers.mail.database import database_errors
from consumers.mail.imap_errors import MailProblem

TRY = text("SELECT pg_try_advisory_lock(:key)")
POLL_SECONDS = (0.2, 1.0)  # between tries while every slot is taken, jittered


class SlotsBusy(MailProblem):
    """Every slot of the account (or its host) stayed taken for the whole wait."""


@dataclass(frozen=True)
class SlotLimits:
    per_account: int = 2  # SYNC_MAIL_MAX_CONNECTIONS_PER_ACCOUNT
    per_host: int = 0  # SYNC_MAIL_MAX_CONNECTIONS_PER_HOST; 0: no cap
    wait_seconds: float = 60.0  # SYNC_MAIL_SLOT_WAIT_SECONDS


def slots_engine(url: str) -> Engine:
    """Connections that are opened for a slot and closed with it (no pool keeps them)."""
    return create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 3})


def slot_key(kind: str, name: str, index: int) -> int:
    """A signed 64-bit advisory lock key for slot `index` of an account or a host."""
    digest = hashlib.blake2b(f"imap-{kind}:{name}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class ConnectionSlots:
    """Takes a slot before an IMAP connection opens; gives it back when it closes."""

    def __init__(self, engine: Engine, limits: SlotLimits) -> None:
        self._engine = engine
        self.limits = limits

    @contextmanager
    def held(
        self, host: str, username: str, stopping: threading.Event | None = None
    ) -> Iterator[None]:
        """Hold a slot of the account and, with a host cap, of its host, waiting at most
        `wait_seconds` for one (SlotsBusy after that; a set `stopping` ends the wait)."""
        stopping = stopping or threading.Event()
        deadline = time.monotonic() + self.limits.wait_seconds
        with database_errors(), self._engine.connect() as conn:
            while not self._take(conn, host.lower(), username):
                left = deadline - time.monotonic()
                if left <= 0 or stopping.is_set():
                    raise SlotsBusy(self._busy_reason(host, username))
                if stopping.wait(min(left, random.uniform(*POLL_SECONDS))):
                    raise SlotsBusy(self._busy_reason(host, username))
            conn.commit()
            yield  # closing the session (NullPool) releases its locks, on any way out

    def _take(self, conn: Connection, host: str, username: str) -> bool:
        """One try at an account slot and (with a cap) a host slot; all or nothing."""
        login = f"{host}\x00{username}"
        account = self._first_free(conn, "account", login, self.limits.per_account)
        if account is None:
            return False
        if self.limits.per_host <= 0:
            return True
        if self._first_free(conn, "host", host, self.limits.per_host) is not None:
            return True
        conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": account})
        return False

    def _first_free(self, conn: Connection, kind: str, name: str, slots: int) -> int | None:
        for index in range(slots):
            key = slot_key(kind, name, index)
            if conn.execute(TRY, {"key": key}).scalar_one():
                return key
        return None

    def _busy_reason(self, host: str, username: str) -> str:
        limits = self.limits
        return (
            f"every IMAP connection this service may open to {username!r} at {host} (at most "
            f"{limits.per_account} per account, SYNC_MAIL_MAX_CONNECTIONS_PER_ACCOUNT"
            + (
                f", and {limits.per_host} per host, SYNC_MAIL_MAX_CONNECTIONS_PER_HOST"
                if limits.per_host > 0
                else ""
            )
            + f") stayed in use for {limits.wait_seconds:g} s; the next sync tries again"
        )
