"""Mail passwords sealed at rest with Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`)."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class UnreadablePassword(Exception):
    """A stored password no configured key opens (the key changed or the row was altered)."""


class PasswordBox:
    """Seals with the first key and opens with any, so keys can be rotated."""

    def __init__(self, keys: str) -> None:
        try:
            self._fernet = MultiFernet([Fernet(k.strip()) for k in keys.split(",") if k.strip()])
        except ValueError as error:
            raise SystemExit(
                "SYNC_MAIL_KEY must be Fernet keys (32 url-safe base64-encoded bytes), "
                f"comma-separated: {error}"
            ) from None

    def seal(self, password: str) -> bytes:
        return self._fernet.encrypt(password.encode())

    def open(self, token: bytes) -> str:
        try:
            return self._fernet.decrypt(token).decode()
        except InvalidToken:
            raise UnreadablePassword(
                "the stored mail password cannot be decrypted with SYNC_MAIL_KEY "
                "(was the key changed?); register the account again"
            ) from None


def new_key() -> str:
    """A fresh Fernet key."""
    return Fernet.generate_key().decode()
