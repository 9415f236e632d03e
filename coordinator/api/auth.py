"""Bearer JWT rules: bounded, typed claims, `sub` a printable user id.

User tokens are RS256/ES256 from the identity provider's JWKS when one is configured,
else HS256 (dev). Worker report tokens are always HS256 with the `sync:report` scope.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import jwt

from coordinator.api.jwks import JwksKeys, UnknownKey
from coordinator.api.token_cache import TokenCache
from core.settings import Settings, require_hs256_key

REPORT_SCOPE = "sync:report"
MAX_USER_ID_LENGTH = 256
MAX_TOKEN_LENGTH = 8192
MAX_HEADER_SEGMENT = 1024  # base64url characters of the JOSE header
NUMERIC_CLAIMS = ("exp", "nbf", "iat")
JWKS_ALGORITHMS = ("RS256", "ES256")


class TokenRejected(Exception):
    """A 401 (or a 403 for a missing scope) with an RFC 6750 error code and a reason."""

    def __init__(
        self, reason: str, detail: str, *, status: int = 401, error: str | None = "invalid_token"
    ) -> None:
        super().__init__(detail)
        self.reason, self.detail, self.status, self.error = reason, detail, status, error

    def challenge(self) -> str:
        """The WWW-Authenticate value; without an error code when no token was sent."""
        if self.error is None:
            return "Bearer"
        extra = f', scope="{REPORT_SCOPE}"' if self.error == "insufficient_scope" else ""
        return f'Bearer error="{self.error}"{extra}'


@dataclass(frozen=True)
class TokenVerifier:
    """Checks bearer tokens against the configured keys and claim rules."""

    secret: str
    jwks: JwksKeys | None = None
    issuer: str | None = None
    audience: str | None = None
    leeway: float = 0
    cache: TokenCache = field(default_factory=TokenCache, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier:
        """A verifier, or SystemExit when the HS256 key is missing or too short."""
        url = settings.jwt_jwks_url
        return cls(
            secret=settings.require_jwt_secret(),
            jwks=JwksKeys(url, settings.jwt_jwks_cache_seconds) if url else None,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            leeway=settings.jwt_leeway_seconds,
            cache=TokenCache(settings.jwt_cache_size, settings.jwt_cache_seconds),
        )

    def user(self, token: str | None) -> str:
        """The user id of a user token."""
        return self._subject(token, from_identity_provider=self.jwks is not None)

    def user_at_once(self, token: str) -> str | None:
        """The user of a valid user token, without waiting on the identity provider: None for
        an invalid token, and for a new one that needs the JWKS (`user` decides those)."""
        if self.jwks is not None:
            return self.cache.get(token.strip(), "True:")
        try:
            return self.user(token)
        except TokenRejected:
            return None

    def known_user(self, token: str) -> str | None:
        """The user of a valid token, without waiting: a token verified recently is taken from
        the cache, a new HS256 one is verified now (and cached for the route that follows).
        None for an invalid token, and for a new one that would need the identity
        provider's keys (the route verifies it off the event loop)."""
        known = self.cache.get(token, f"{self.jwks is not None}:") or self.cache.get(
            token, f"False:{REPORT_SCOPE}"
        )
        if known is not None or self.jwks is not None:
            return known
        try:
            return self.user(token)
        except TokenRejected:
            return None

    def reporter(self, token: str | None) -> str:
        """The user id of a worker's report token, which must carry the report scope."""
        return self._subject(token, from_identity_provider=False, scope=REPORT_SCOPE)

    def _subject(self, token: str | None, from_identity_provider: bool, scope: str = "") -> str:
        token = (token or "").strip()
        if not token:
            raise TokenRejected("missing", "a bearer token is required", error=None)
        rule = f"{from_identity_provider}:{scope}"
        known = self.cache.get(token, rule)
        if known is not None:
            return known
        header, unverified = _parse(token)
        _check_claim_types(unverified)
        key: Any = self.secret
        algorithm = header.get("alg")
        if from_identity_provider:
            if algorithm not in JWKS_ALGORITHMS or self.jwks is None:
                raise TokenRejected("algorithm", "user tokens must be RS256 or ES256")
            kid = header.get("kid")
            if kid is not None and (not isinstance(kid, str) or len(kid) > 256):
                raise TokenRejected("malformed", "kid must be a string of at most 256 characters")
            try:
                key = self.jwks.key_for(kid)
            except UnknownKey as error:
                raise TokenRejected("unknown_key", str(error)) from None
        elif algorithm != "HS256":
            raise TokenRejected("algorithm", "this token must be HS256")
        claims = self._verified(token, key, str(algorithm), from_identity_provider)
        if scope and scope not in str(claims.get("scope", "")).split():
            raise TokenRejected(
                "scope", f"token lacks the {scope!r} scope", status=403, error="insufficient_scope"
            )
        user_id = _user_id(claims.get("sub"))
        self.cache.put(token, rule, user_id, float(claims["exp"]))
        return user_id

    def _verified(self, token: str, key: Any, algorithm: str, idp: bool) -> dict[str, Any]:
        required = ["exp", "sub"]
        if idp and self.issuer:
            required.append("iss")
        if idp and self.audience:
            required.append("aud")
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                options={"require": required, "verify_aud": idp and self.audience is not None},
                issuer=self.issuer if idp else None,
                audience=self.audience if idp else None,
                leeway=self.leeway,
            )
        except jwt.ExpiredSignatureError:
            raise TokenRejected("expired", "token expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenRejected("not_yet_valid", "token is not valid yet (nbf or iat)") from None
        except jwt.InvalidSignatureError:
            raise TokenRejected("signature", "invalid token: signature does not match") from None
        except jwt.MissingRequiredClaimError as error:
            raise TokenRejected("missing_claim", f"invalid token: {error}") from None
        except (jwt.InvalidIssuerError, jwt.InvalidAudienceError) as error:
            raise TokenRejected("issuer_or_audience", f"invalid token: {error}") from None
        except (jwt.PyJWTError, ValueError, TypeError, OverflowError) as error:
            raise TokenRejected("malformed", f"invalid token: {error}") from None


def expiry_of(token: str) -> float:
    """The `exp` of a token already verified (so it has a finite numeric one)."""
    return float(_parse(token)[1]["exp"])


def _parse(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and unverified claims of a bounded token; claims are type-checked before use."""
    if len(token) > MAX_TOKEN_LENGTH:
        raise TokenRejected("too_large", f"token is longer than {MAX_TOKEN_LENGTH} characters")
    if token.count(".") != 2 or len(token.partition(".")[0]) > MAX_HEADER_SEGMENT:
        raise TokenRejected("malformed", "token must be a compact JWS with a small JOSE header")
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except (jwt.PyJWTError, ValueError, TypeError) as error:
        raise TokenRejected("malformed", f"invalid token: {error}") from None
    return header, claims


def _check_claim_types(claims: dict[str, Any]) -> None:
    """RFC 7519 NumericDate: a JSON number, never a numeric string, never NaN or infinity."""
    for name in NUMERIC_CLAIMS:
        value = claims.get(name)
        if value is None and name not in claims:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TokenRejected("claim_type", f"{name} must be a JSON number (NumericDate)")
        if isinstance(value, float) and not math.isfinite(value):
            raise TokenRejected("claim_type", f"{name} must be a finite number")


def _user_id(subject: object) -> str:
    """`sub` as a user id: 1..MAX_USER_ID_LENGTH printable characters, no lone surrogates."""
    if (
        not isinstance(subject, str)
        or not 0 < len(subject) <= MAX_USER_ID_LENGTH
        or not subject.isprintable()
    ):
        raise TokenRejected(
            "subject",
            f"sub must be 1 to {MAX_USER_ID_LENGTH} printable characters "
            "(no control characters, no lone surrogates)",
        )
    return subject


def issue_token(
    user_id: str, secret: str, ttl_seconds: int = 3600, scope: str | None = None
) -> str:
    """An HS256 token for trying the API (`syncctl token`) or a worker's reports (scope)."""
    now = int(time.time())
    claims: dict[str, object] = {"sub": user_id, "iat": now, "exp": now + ttl_seconds}
    if scope:
        claims["scope"] = scope
    return jwt.encode(claims, require_hs256_key(secret), "HS256")
