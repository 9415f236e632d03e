"""The `mail_oauth2_flows` table: connects started and not yet called back, each found by its
`state` and the starting browser's binding value (stored hashed together), usable once and for a
bounded time.

The binding (a cookie) keeps a connect from being finished in another browser: without it, a
user could start a connect and send its provider URL to someone else, whose mailbox the
callback would then store under the first user's account (OAuth 2.0 Security BCP 4.7)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, text

from consumers.mail.database import database_errors
from consumers.mail.password_box import PasswordBox

FLOW_SECONDS = 600
FLOWS_PER_USER = 5  # connects a user may have open at once; a sixth drops the oldest

BEGIN = text(
    "INSERT INTO mail_oauth2_flows (state_hash, user_id, provider, code_verifier, nonce, "
    "expires_at) VALUES (:state_hash, :user_id, :provider, :verifier, :nonce, "
    "clock_timestamp() + make_interval(secs => :seconds)) RETURNING expires_at"
)
# Whoever presents the state first takes the flow; a second callback finds nothing.
TAKE = text(
    "DELETE FROM mail_oauth2_flows WHERE state_hash = :state_hash "
    "RETURNING user_id, provider, code_verifier, nonce, expires_at > clock_timestamp() AS live"
)
PURGE = text("DELETE FROM mail_oauth2_flows WHERE expires_at < clock_timestamp()")
TRIM = text(
    "DELETE FROM mail_oauth2_flows WHERE user_id = :user_id AND state_hash NOT IN ("
    "SELECT state_hash FROM mail_oauth2_flows WHERE user_id = :user_id "
    "ORDER BY expires_at DESC LIMIT :keep)"
)


@dataclass(frozen=True)
class Flow:
    user_id: str
    provider: str
    code_verifier: str = field(repr=False)
    nonce: str


class FlowStore:
    def __init__(self, engine: Engine, box: PasswordBox) -> None:
        self._engine = engine
        self._box = box

    def begin(
        self, state: str, browser: str, user_id: str, provider: str, verifier: str, nonce: str
    ) -> datetime:
        """Remember a started connect; when it stops being accepted."""
        with database_errors(), self._engine.begin() as conn:
            conn.execute(PURGE)
            conn.execute(TRIM, {"user_id": user_id, "keep": FLOWS_PER_USER - 1})
            expires_at: datetime = conn.execute(
                BEGIN,
                {
                    "state_hash": _hash(state, browser),
                    "user_id": user_id,
                    "provider": provider,
                    "verifier": self._box.seal(verifier),
                    "nonce": nonce,
                    "seconds": FLOW_SECONDS,
                },
            ).scalar_one()
        return expires_at

    def take(self, state: str, browser: str) -> Flow | None:
        """The flow this state started in this browser, once; None when unknown, used, expired
        or started in another browser."""
        with database_errors(), self._engine.begin() as conn:
            found = conn.execute(TAKE, {"state_hash": _hash(state, browser)})
            row = found.mappings().one_or_none()
        if row is None or not row["live"]:
            return None
        return Flow(
            row["user_id"],
            row["provider"],
            self._box.open(bytes(row["code_verifier"])),
            row["nonce"],
        )


def _hash(state: str, browser: str) -> str:
    return hashlib.sha256(f"{state}:{browser}".encode()).hexdigest()
