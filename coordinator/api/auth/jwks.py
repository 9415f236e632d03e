"""The identity provider's signing keys, fetched from its JWKS URL and cached."""

from __future__ import annotations

import threading
import time

from jwt import PyJWK, PyJWKClient
from jwt.exceptions import PyJWKClientConnectionError, PyJWKClientError, PyJWTError

FETCH_TIMEOUT_SECONDS = 5
MIN_REFRESH_SECONDS = 10


class KeysUnavailable(Exception):
    """The JWKS URL did not answer; the caller may retry."""


class UnknownKey(Exception):
    """No key of the JWKS matches the token's `kid`, even after a refresh."""


class JwksKeys:
    """Keys by `kid`; an unknown `kid` refreshes the set, at most once per MIN_REFRESH_SECONDS.

    The throttle keeps tokens with made-up `kid`s from turning into a request flood
    against the identity provider.
    """

    def __init__(self, url: str, cache_seconds: float) -> None:
        self._client = PyJWKClient(
            url, cache_jwk_set=True, lifespan=cache_seconds, timeout=FETCH_TIMEOUT_SECONDS
        )
        self._lock = threading.Lock()
        self._refreshed_at = -float("inf")

    def key_for(self, kid: str | None) -> PyJWK:
        """The signing key for `kid` (or the only key when the token names none)."""
        found = _match(self._keys(refresh=False), kid)
        if found is None:
            with self._lock:
                if time.monotonic() - self._refreshed_at >= MIN_REFRESH_SECONDS:
                    self._refreshed_at = time.monotonic()
                    found = _match(self._keys(refresh=True), kid)
        if found is None:
            raise UnknownKey(f"no key with kid {kid!r} in the identity provider's JWKS")
        return found

    def _keys(self, refresh: bool) -> list[PyJWK]:
        try:
            return self._client.get_signing_keys(refresh=refresh)
        except PyJWKClientConnectionError as error:
            raise KeysUnavailable(f"identity provider keys unavailable: {error}") from None
        except PyJWKClientError:
            return []
        except PyJWTError as error:
            raise KeysUnavailable(f"identity provider JWKS is malformed: {error}") from None


def _match(keys: list[PyJWK], kid: str | None) -> PyJWK | None:
    if kid is None:
        return keys[0] if len(keys) == 1 else None
    return next((key for key in keys if key.key_id == kid), None)
