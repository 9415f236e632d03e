"""The `mail_accounts` table: one IMAP account per user, its password sealed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from sqlalchemy import Connection, Engine, text

from consumers.mail.database import database_errors
from consumers.mail.message_store import forget_user_mail
from consumers.mail.password_box import PasswordBox

Security = Literal["tls", "starttls", "none"]

UPSERT = text(
    "INSERT INTO mail_accounts (user_id, host, port, security, username, password, folders) "
    "VALUES (:user_id, :host, :port, :security, :username, :password, :folders) "
    "ON CONFLICT (user_id) DO UPDATE SET host = EXCLUDED.host, port = EXCLUDED.port, "
    "security = EXCLUDED.security, username = EXCLUDED.username, "
    "password = EXCLUDED.password, folders = EXCLUDED.folders, updated_at = clock_timestamp() "
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
    password: str = field(repr=False)  # never in a log line or a traceback
    folders: tuple[str, ...] | None = None

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


class AccountStore:
    """Registers, reads and removes accounts; a changed server or login drops the old mail."""

    def __init__(self, engine: Engine, box: PasswordBox) -> None:
        self._engine = engine
        self._box = box

    def put(self, user_id: str, account: ImapAccount) -> AccountView:
        with database_errors(), self._engine.begin() as conn:
            old = conn.execute(IDENTITY, {"user_id": user_id}).one_or_none()
            identity = (account.host, account.port, account.username)
            if old is not None and tuple(old) != identity:
                # Another mailbox: its UIDs mean nothing for the messages stored so far.
                forget_user_mail(conn, user_id)
            updated_at = conn.execute(
                UPSERT,
                {
                    "user_id": user_id,
                    "host": account.host,
                    "port": account.port,
                    "security": account.security,
                    "username": account.username,
                    "password": self._box.seal(account.password),
                    "folders": list(account.folders) if account.folders is not None else None,
                },
            ).scalar_one()
        return AccountView(
            account.host,
            account.port,
            account.security,
            account.username,
            account.folders,
            updated_at,
        )

    def describe(self, user_id: str) -> AccountView | None:
        with database_errors(), self._engine.connect() as conn:
            row = conn.execute(ONE, {"user_id": user_id}).mappings().one_or_none()
        if row is None:
            return None
        folders = tuple(row["folders"]) if row["folders"] is not None else None
        return AccountView(
            row["host"], row["port"], row["security"], row["username"], folders, row["updated_at"]
        )

    def load(self, user_id: str) -> ImapAccount | None:
        """The account with its password opened, for the executor."""
        with database_errors(), self._engine.connect() as conn:
            row = conn.execute(ONE, {"user_id": user_id}).mappings().one_or_none()
        if row is None:
            return None
        return ImapAccount(
            host=row["host"],
            port=row["port"],
            security=row["security"],
            username=row["username"],
            password=self._box.open(bytes(row["password"])),
            folders=tuple(row["folders"]) if row["folders"] is not None else None,
        )

    def delete(self, user_id: str) -> bool:
        """Remove the account and everything synced from it; False if there was none."""
        with database_errors(), self._engine.begin() as conn:
            return _delete(conn, user_id)


def _delete(conn: Connection, user_id: str) -> bool:
    # The row first: a sync starting a folder over holds it (FOR SHARE) until its checkpoint is
    # written, so that checkpoint is either refused or committed before the mail is forgotten.
    conn.execute(IDENTITY, {"user_id": user_id})
    forget_user_mail(conn, user_id)
    return conn.execute(DELETE, {"user_id": user_id}).rowcount > 0
