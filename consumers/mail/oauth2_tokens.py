"""The `mail_oauth2_tokens` table: an OAuth2 account's refresh and access tokens, sealed, and
whether the grant still works. Every function runs in the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import Connection, text

from consumers.mail.password_box import PasswordBox

GrantState = Literal["connected", "reauth_required"]

SAVE = text(
    "INSERT INTO mail_oauth2_tokens (user_id, provider, refresh_token, access_token, "
    "access_expires_at) VALUES (:user_id, :provider, :refresh, :access, "
    "clock_timestamp() + make_interval(secs => :expires_in)) "
    "ON CONFLICT (user_id) DO UPDATE SET provider = EXCLUDED.provider, "
    "refresh_token = EXCLUDED.refresh_token, access_token = EXCLUDED.access_token, "
    "access_expires_at = EXCLUDED.access_expires_at, state = 'connected', state_reason = NULL, "
    "updated_at = clock_timestamp()"
)
LOCK = text(
    "SELECT provider, refresh_token, access_token, state, state_reason, "
    "extract(epoch FROM access_expires_at - clock_timestamp()) AS remaining "
    "FROM mail_oauth2_tokens WHERE user_id = :user_id FOR UPDATE"
)
REFRESHED = text(
    "UPDATE mail_oauth2_tokens SET access_token = :access, "
    "access_expires_at = clock_timestamp() + make_interval(secs => :expires_in), "
    "refresh_token = :refresh, refreshes = refreshes + 1, "
    "updated_at = clock_timestamp() WHERE user_id = :user_id"
)
EXPIRED = text(
    "UPDATE mail_oauth2_tokens SET state = 'reauth_required', state_reason = :reason, "
    "access_token = NULL, updated_at = clock_timestamp() WHERE user_id = :user_id"
)
STATE = text("SELECT state, state_reason FROM mail_oauth2_tokens WHERE user_id = :user_id")
FORGET = text("DELETE FROM mail_oauth2_tokens WHERE user_id = :user_id")


@dataclass(frozen=True)
class Tokens:
    """A token endpoint's answer."""

    access_token: str = field(repr=False)
    expires_in: int
    refresh_token: str | None = field(repr=False)  # None: the old one stays valid


@dataclass(frozen=True)
class LockedGrant:
    """A grant read under its row lock: until the transaction ends, no one else refreshes it."""

    provider: str
    refresh_token: str = field(repr=False)
    access_token: str | None = field(repr=False)
    remaining_seconds: float  # of the access token, by the database's clock
    state: GrantState
    state_reason: str | None


def save_grant(
    conn: Connection, box: PasswordBox, user_id: str, provider: str, tokens: Tokens
) -> None:
    if tokens.refresh_token is None:
        raise ValueError("a new grant needs a refresh token")
    conn.execute(
        SAVE,
        {
            "user_id": user_id,
            "provider": provider,
            "refresh": box.seal(tokens.refresh_token),
            "access": box.seal(tokens.access_token),
            "expires_in": tokens.expires_in,
        },
    )


def lock_grant(conn: Connection, box: PasswordBox, user_id: str) -> LockedGrant | None:
    row = conn.execute(LOCK, {"user_id": user_id}).mappings().one_or_none()
    if row is None:
        return None
    access = row["access_token"]
    return LockedGrant(
        provider=row["provider"],
        refresh_token=box.open(bytes(row["refresh_token"])),
        access_token=box.open(bytes(access)) if access is not None else None,
        remaining_seconds=float(row["remaining"] or 0.0),
        state=row["state"],
        state_reason=row["state_reason"],
    )


def save_refresh(
    conn: Connection, box: PasswordBox, user_id: str, tokens: Tokens, spent: str
) -> None:
    """The new access token, and the refresh token: the rotated one, else the one `spent`,
    sealed again so that it moves to SYNC_MAIL_KEY's first key (key rotation)."""
    conn.execute(
        REFRESHED,
        {
            "user_id": user_id,
            "access": box.seal(tokens.access_token),
            "expires_in": tokens.expires_in,
            "refresh": box.seal(tokens.refresh_token or spent),
        },
    )


def mark_reauth_required(conn: Connection, user_id: str, reason: str) -> None:
    conn.execute(EXPIRED, {"user_id": user_id, "reason": reason[:500]})


def grant_state(conn: Connection, user_id: str) -> tuple[GrantState, str | None] | None:
    row = conn.execute(STATE, {"user_id": user_id}).one_or_none()
    return (row[0], row[1]) if row is not None else None


def forget_grant(conn: Connection, user_id: str) -> None:
    conn.execute(FORGET, {"user_id": user_id})
