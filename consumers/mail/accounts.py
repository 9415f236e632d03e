"""The `mail_accounts` table: one IMAP account per user, its password sealed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from sqlalchemy import Connection, Engine, text

from consumers.mail.database import database_errors
from consumers.mail.message_store import forget_user_mail
from consumers.mail.oauth2_tokens import GrantState, Tokens, forget_grant, grant_state, save_grant
from consumers.mail.password_box import PasswordBox

Security = Literal["tls", "starttls", "none"]
Auth = Literal["password", "oauth2"]

UPSERT = text(
    "INSERT INTO mail_accounts (user_id, host, port, security, username, password, folders, "
    "auth, provider) "
    "VALUES (:user_id, :host, :port, :security, :username, :password, :folders, :auth, :provider) "
    "ON CONFLICT (user_id) DO UPDATE SET host = EXCLUDED.host, port = EXCLUDED.port, "
    "security = EXCLUDED.security, username = EXCLUDED.username, "
    "password = EXCLUDED.password, folders = EXCLUDED.folders, auth = EXCLUDED.auth, "
    "provider = EXCLUDED.provider, updated_at = clock_timestamp() "
    "RETURNING updated_at"
)
ONE = text("SELECT * FROM mail_accounts WHERE user_id = :user_id")
IDENTITY = text(
    "SELECT host, port, username FROM mail_accounts WHERE user_id = :user_id FOR UPDATE"
)
DELETE = text("DELETE FROM mail_accounts WHERE user_id = :user_id")


@dataclass(frozen=True)
class ImapAccount:
    """Where and as whom to log in; `folders` None means every selectable folder."""

    host: str
    port: int
    security: Security
    username: str
    password: str = field(repr=False)  # never in a log line or a traceback; oauth2: the
    folders: tuple[str, ...] | None = None  # access token once the executor has one
    auth: Auth = "password"
    provider: str | None = None  # the OAuth2 provider's name

    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class AccountView:
    """What a user may read back: everything but the password."""

    host: str
    port: int
    security: Security
    username: str
    folders: tuple[str, ...] | None
    updated_at: datetime
    auth: Auth = "password"
    provider: str | None = None
    state: GrantState = "connected"
    state_reason: str | None = None


class AccountStore:
    """Registers, reads and removes accounts; a changed server or login drops the old mail."""

    def __init__(self, engine: Engine, box: PasswordBox) -> None:
        self._engine = engine
        self._box = box

    def put(self, user_id: str, account: ImapAccount) -> AccountView:
        """A password account (replacing any OAuth2 grant)."""
        with database_errors(), self._engine.begin() as conn:
            updated_at = self._upsert(conn, user_id, account, self._box.seal(account.password))
            forget_grant(conn, user_id)
        return _view(account, updated_at)

    def connect_oauth2(self, user_id: str, account: ImapAccount, tokens: Tokens) -> AccountView:
        """An OAuth2 account and its grant, in one transaction."""
        assert account.auth == "oauth2" and account.provider is not None
        with database_errors(), self._engine.begin() as conn:
            updated_at = self._upsert(conn, user_id, account, None)
            save_grant(conn, self._box, user_id, account.provider, tokens)
        return _view(account, updated_at)

    def _upsert(
        self, conn: Connection, user_id: str, account: ImapAccount, sealed: bytes | None
    ) -> datetime:
        old = conn.execute(IDENTITY, {"user_id": user_id}).one_or_none()
        identity = (account.host, account.port, account.username)
        if old is not None and tuple(old) != identity:
            # Another mailbox: its UIDs mean nothing for the messages stored so far.
            forget_user_mail(conn, user_id)
        updated_at: datetime = conn.execute(
            UPSERT,
            {
                "user_id": user_id,
                "host": account.host,
                "port": account.port,
                "security": account.security,
                "username": account.username,
                "password": sealed,
                "folders": list(account.folders) if account.folders is not None else None,
                "auth": account.auth,
                "provider": account.provider,
            },
        ).scalar_one()
        return updated_at

    def describe(self, user_id: str) -> AccountView | None:
        with database_errors(), self._engine.connect() as conn:
            row = conn.execute(ONE, {"user_id": user_id}).mappings().one_or_none()
            grant = grant_state(conn, user_id) if row is not None else None
        if row is None:
            return None
        folders = tuple(row["folders"]) if row["folders"] is not None else None
        state, reason = grant or ("connected", None)
        return AccountView(
            row["host"],
            row["port"],
            row["security"],
            row["username"],
            folders,
            row["updated_at"],
            auth=row["auth"],
            provider=row["provider"],
            state=state,
            state_reason=reason,
        )

    def load(self, user_id: str) -> ImapAccount | None:
        """The account with its password opened, for the executor (oauth2: no password)."""
        with database_errors(), self._engine.connect() as conn:
            row = conn.execute(ONE, {"user_id": user_id}).mappings().one_or_none()
        if row is None:
            return None
        return ImapAccount(
            host=row["host"],
            port=row["port"],
            security=row["security"],
            username=row["username"],
            password=self._box.open(bytes(row["password"])) if row["password"] else "",
            folders=tuple(row["folders"]) if row["folders"] is not None else None,
            auth=row["auth"],
            provider=row["provider"],
        )

    def delete(self, user_id: str) -> bool:
        """Remove the account and everything synced from it; False if there was none."""
        with database_errors(), self._engine.begin() as conn:
            return _delete(conn, user_id)


def _view(account: ImapAccount, updated_at: datetime) -> AccountView:
    return AccountView(
        account.host,
        account.port,
        account.security,
        account.username,
        account.folders,
        updated_at,
        auth=account.auth,
        provider=account.provider,
    )


def _delete(conn: Connection, user_id: str) -> bool:
    # The row first: a sync starting a folder over holds it (FOR SHARE) until its checkpoint is
    # written, so that checkpoint is either refused or committed before the mail is forgotten.
    conn.execute(IDENTITY, {"user_id": user_id})
    forget_user_mail(conn, user_id)
    return conn.execute(DELETE, {"user_id": user_id}).rowcount > 0
