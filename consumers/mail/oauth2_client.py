"""The OAuth2 / OpenID Connect client side, done by Authlib: the authorization URL with PKCE,
the code exchange, the ID token's checks and the refresh grant. No hand-written HTTP."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from consumers.mail.oauth2_providers import Provider
from consumers.mail.oauth2_tokens import Tokens

ID_TOKEN_LEEWAY_SECONDS = 120


class ProviderUnreachable(Exception):
    """The provider could not be reached, timed out or answered 5xx."""


class ProviderRefused(Exception):
    """The provider answered with an OAuth error (`error`, `error_description`)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.description = description


class IdTokenInvalid(Exception):
    """The ID token failed a check, or no claim names the login."""


class IssuerMismatch(IdTokenInvalid):
    """The authorization answer names another issuer (RFC 9207): a mix-up attack, or a
    misconfiguration."""


@dataclass(frozen=True)
class Connected:
    """What the callback stores: the tokens and the login name the ID token names."""

    tokens: Tokens
    login: str


class OAuth2Client:
    """One provider's client; its discovery document and keys are fetched once."""

    def __init__(self, provider: Provider, timeout: float) -> None:
        self.provider = provider
        self._timeout = timeout
        self._metadata: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def authorization_url(self, redirect_uri: str, state: str, verifier: str, nonce: str) -> str:
        p = self.provider
        with self._session(redirect_uri) as session:
            url, _ = session.create_authorization_url(
                self._endpoint("authorization_endpoint"),
                state=state,
                code_verifier=verifier,
                nonce=nonce,
                **dict(p.authorize_params),
            )
        return str(url)

    def exchange(
        self, code: str, verifier: str, redirect_uri: str, nonce: str, iss: str | None = None
    ) -> Connected:
        """The code for tokens, and the login name from the ID token (else userinfo); `iss`:
        the issuer the authorization answer named, if it named one."""
        issuer = str(self._discover().get("issuer", ""))
        if iss is not None and "{tenantid}" not in issuer and iss != issuer:
            raise IssuerMismatch(f"the answer names issuer {iss!r}, not {issuer!r}")
        with self._session(redirect_uri) as session:
            answer = self._call(
                session.fetch_token,
                self._endpoint("token_endpoint"),
                grant_type="authorization_code",
                code=code,
                code_verifier=verifier,
            )
            claims = self._id_claims(answer.get("id_token"), nonce)
            login = self._login(claims, session)
        return Connected(_tokens(answer), login)

    def refresh(self, refresh_token: str) -> Tokens:
        with self._session(None) as session:
            answer = self._call(
                session.refresh_token, self._endpoint("token_endpoint"), refresh_token=refresh_token
            )
        return _tokens(answer)

    def _session(self, redirect_uri: str | None) -> OAuth2Session:
        p = self.provider
        session = OAuth2Session(
            p.client_id,
            p.client_secret,
            scope=p.scopes,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
        )
        session.timeout = self._timeout
        return session

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            answer: dict[str, Any] = method(*args, timeout=self._timeout, **kwargs)
        except OAuthError as error:
            raise ProviderRefused(str(error.error), str(error.description or "")) from None
        except (requests.RequestException, ValueError) as error:  # ValueError: not JSON (a 5xx)
            raise ProviderUnreachable(f"{self.provider.title} unreachable: {error}") from None
        if "access_token" not in answer:
            raise ProviderRefused("invalid_response", "the token answer had no access_token")
        return answer

    def _endpoint(self, name: str) -> str:
        endpoint = self._discover().get(name)
        if not isinstance(endpoint, str):
            raise ProviderUnreachable(f"{self.provider.title}'s discovery document lacks {name}")
        return endpoint

    def _discover(self, new_keys: bool = False) -> dict[str, Any]:
        """The discovery document, with the provider's signing keys under `_jwks`; `new_keys`:
        fetch the keys again (the provider rotated them: Google does every few weeks)."""
        with self._lock:
            if self._metadata is None:
                self._metadata = self._get_json(self.provider.discovery_url)
                new_keys = True
            if new_keys:
                self._metadata["_jwks"] = self._get_json(str(self._metadata.get("jwks_uri")))
            return self._metadata

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            answer = requests.get(url, timeout=self._timeout)
            if answer.status_code >= 500:
                raise ProviderUnreachable(f"{url} answered {answer.status_code}")
            answer.raise_for_status()
            document: dict[str, Any] = answer.json()
        except (requests.RequestException, ValueError) as error:
            raise ProviderUnreachable(f"{self.provider.title} unreachable: {error}") from None
        return document

    def _id_claims(self, id_token: object, nonce: str) -> dict[str, Any]:
        """The ID token's claims after OpenID Connect Core 3.1.3.7's checks."""
        if not isinstance(id_token, str):
            raise IdTokenInvalid("the provider sent no ID token (is `openid` among the scopes?)")
        metadata = self._discover()
        try:
            try:
                token = jwt.decode(id_token, KeySet.import_key_set(metadata["_jwks"]))
            except (JoseError, ValueError):  # signed with a key published since: look again
                metadata = self._discover(new_keys=True)
                token = jwt.decode(id_token, KeySet.import_key_set(metadata["_jwks"]))
            claims: dict[str, Any] = dict(token.claims)
            # Microsoft's multi-tenant issuer is a template naming the user's tenant.
            issuer = str(metadata.get("issuer", "")).replace("{tenantid}", str(claims.get("tid")))
            jwt.JWTClaimsRegistry(
                leeway=ID_TOKEN_LEEWAY_SECONDS,
                iss={"essential": True, "value": issuer},
                aud={"essential": True, "value": self.provider.client_id},
                nonce={"essential": True, "value": nonce},
                exp={"essential": True},
            ).validate(claims)
        except (JoseError, ValueError, KeyError) as error:
            raise IdTokenInvalid(f"the ID token failed its checks: {error}") from None
        return claims

    def _login(self, claims: dict[str, Any], session: OAuth2Session) -> str:
        found = _first_claim(claims, self.provider.login_claims)
        if found is None and isinstance(self._discover().get("userinfo_endpoint"), str):
            try:
                answer = session.get(self._discover()["userinfo_endpoint"], timeout=self._timeout)
                answer.raise_for_status()
                found = _first_claim(answer.json(), self.provider.login_claims)
            except (requests.RequestException, ValueError) as error:
                raise ProviderUnreachable(f"userinfo: {error}") from None
        if found is None:
            wanted = " or ".join(self.provider.login_claims)
            raise IdTokenInvalid(f"neither the ID token nor userinfo has {wanted}")
        return found


def _first_claim(claims: dict[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = claims.get(name)
        if isinstance(value, str) and 0 < len(value) <= 320 and value.isprintable():
            return value
    return None


def _tokens(answer: dict[str, Any]) -> Tokens:
    expires_in = answer.get("expires_in")
    refresh = answer.get("refresh_token")
    return Tokens(
        access_token=str(answer["access_token"]),
        expires_in=int(expires_in) if isinstance(expires_in, int | float | str) else 3600,
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
    )
