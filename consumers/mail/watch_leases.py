"""Which `syncctl watch` process watches which account: the `mail_watchers` and
`mail_watch_leases` tables (migration 0013, docs/decisions/watcher-leases.md).

A watcher renews its own row (`expires_at`) each tick; an account's lease names one watcher
and is valid while that watcher's row has not expired, so renewing costs one row however
many accounts a watcher holds. An account whose watcher expired (or has no lease) is claimed by
the first live watcher under its fair share, `ceil(accounts / live watchers)`; a watcher over
its share releases the rest, so a newcomer gets some at its next tick.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Engine, text

from consumers.mail.database import database_errors

HEARTBEAT = text(
    "INSERT INTO mail_watchers (watcher_id, expires_at) "
    "VALUES (:watcher, now() + make_interval(secs => :lease)) "
    "ON CONFLICT (watcher_id) DO UPDATE SET expires_at = EXCLUDED.expires_at"
)
OWNED = text("SELECT user_id FROM mail_watch_leases WHERE watcher_id = :watcher")
COUNTS = text(
    "SELECT (SELECT count(*) FROM mail_watchers WHERE expires_at > now()), "
    "(SELECT count(*) FROM mail_accounts)"
)
LIVE = (
    "SELECT 1 FROM mail_watchers w WHERE w.watcher_id = {lease}.watcher_id AND w.expires_at > now()"
)
# An account with no lease, or whose watcher expired. The conflict branch checks again under the
# row lock, so of two watchers claiming one account only the first gets it.
CLAIM = text(
    "INSERT INTO mail_watch_leases (user_id, watcher_id) "
    "SELECT a.user_id, :watcher FROM mail_accounts a "
    "WHERE NOT EXISTS (SELECT 1 FROM mail_watch_leases l WHERE l.user_id = a.user_id "
    f"AND EXISTS ({LIVE.format(lease='l')})) "
    "ORDER BY a.user_id LIMIT :count "
    "ON CONFLICT (user_id) DO UPDATE SET watcher_id = EXCLUDED.watcher_id "
    f"WHERE NOT EXISTS ({LIVE.format(lease='mail_watch_leases')}) "
    "RETURNING user_id"
)
RELEASE = text(
    "DELETE FROM mail_watch_leases WHERE watcher_id = :watcher AND user_id = ANY(:user_ids)"
)
RESIGN = (
    text("DELETE FROM mail_watch_leases WHERE watcher_id = :watcher"),
    text("DELETE FROM mail_watchers WHERE watcher_id = :watcher"),
)
# Rows of watchers long gone; their leases are claimable already, this only tidies up.
FORGET_DEAD = text("DELETE FROM mail_watchers WHERE expires_at < now() - interval '1 hour'")
HOLDERS = text("SELECT user_id, watcher_id FROM mail_watch_leases")


@dataclass(frozen=True)
class Holding:
    """What a watcher holds after a tick, and how many accounts it should hold."""

    accounts: frozenset[str]
    share: int


class WatchLeases:
    """One watcher's view of the lease tables."""

    def __init__(self, engine: Engine, watcher_id: str, lease_seconds: float) -> None:
        self._engine = engine
        self.watcher_id = watcher_id
        self._lease = lease_seconds

    def heartbeat(self) -> None:
        """Announce (or renew) this watcher; its leases are valid until lease_seconds on."""
        with database_errors(), self._engine.begin() as conn:
            self._beat(conn)

    def tick(self, claim: bool = True) -> Holding:
        """Renew, then claim accounts up to this watcher's fair share; what it holds now."""
        with database_errors(), self._engine.begin() as conn:
            self._beat(conn)
            conn.execute(FORGET_DEAD)
            owned = set(self._owned(conn))
            watchers, accounts = conn.execute(COUNTS).one()
            share = -(-int(accounts) // max(1, int(watchers)))
            if claim and len(owned) < share:
                taken = conn.execute(
                    CLAIM, {"watcher": self.watcher_id, "count": share - len(owned)}
                ).scalars()
                owned.update(taken)
        return Holding(frozenset(owned), share)

    def release(self, user_ids: list[str]) -> None:
        """Give these accounts up (their sessions are closed already)."""
        with database_errors(), self._engine.begin() as conn:
            conn.execute(RELEASE, {"watcher": self.watcher_id, "user_ids": user_ids})

    def resign(self) -> None:
        """At a clean stop: every lease and the watcher's row go, so others take over now."""
        with database_errors(), self._engine.begin() as conn:
            for statement in RESIGN:
                conn.execute(statement, {"watcher": self.watcher_id})

    def _beat(self, conn: Connection) -> None:
        conn.execute(HEARTBEAT, {"watcher": self.watcher_id, "lease": self._lease})

    def _owned(self, conn: Connection) -> list[str]:
        return list(conn.execute(OWNED, {"watcher": self.watcher_id}).scalars())


def holders(engine: Engine) -> dict[str, str]:
    """Every leased account and its watcher (tests and `syncctl watch` diagnostics)."""
    with database_errors(), engine.connect() as conn:
        return {user_id: watcher for user_id, watcher in conn.execute(HOLDERS).all()}
