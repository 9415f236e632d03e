"""Bearer JWT rules: bounded, typed claims, `sub` a printable user id.

User tokens are RS256/ES256 from the identity provider's JWKS when one is configured,
else HS256 (dev). Worker report tokens are always HS256 with the `sync:report` scope, and are
never user tokens: a token verified under one rule is remembered under that rule only.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import jwt

from coordinator.api.auth.jwks import JwksKeys, UnknownKey
from coordinator.api.auth.token_cache import TokenCache
from core.report_scope import REPORT_SCOPE
from core.settings import Settings, require_hs256_key

MAX_USER_ID_LENGTH = 256
MAX_TOKEN_LENGTH = 8192
MAX_HEADER_SEGMENT = 1024  # base64url characters of the JOSE header
NUMERIC_CLAIMS = ("exp", "nbf", "iat")
LATEST_NUMERIC_DATE = 253_402_300_799  # 9999-12-31T23:59:59Z: later ones are not dates
USER_RULE, REPORT_RULE = "user", "report"  # what a token was verified as (cache keys)
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
        """The user id of a user token; a worker's report token is refused."""
        return self._subject(token, USER_RULE)

    def user_at_once(self, token: str) -> str | None:
        """The user of a valid user token, without waiting on the identity provider: None for
        an invalid token, and for a new one that needs the JWKS (`user` decides those)."""
        if self.jwks is not None:
            return self.cache.get(token.strip(), USER_RULE)
        try:
            return self.user(token)
        except TokenRejected:
            return None

    def admission_user(self, token: str) -> str | None:
        """Whose request this is, for the per-user gate only, never to authorize anything: a
        user token as `user_at_once` finds it, or a report token verified before (reports
        wait in their user's line too). None when that is not known at once."""
        return self.cache.get(token, REPORT_RULE) or self.user_at_once(token)

    def reporter(self, token: str | None) -> str:
        """The user id of a worker's report token, which must carry the report scope."""
        return self._subject(token, REPORT_RULE)

    def _subject(self, token: str | None, rule: str) -> str:
        token = (token or "").strip()
        if not token:
            raise TokenRejected("missing", "a bearer token is required", error=None)
        known = self.cache.get(token, rule)
        if known is not None:
            return known
        header, unverified = _parse(token)
        _check_claim_types(unverified)
        key: Any = self.secret
        algorithm = header.get("alg")
        from_identity_provider = rule == USER_RULE and self.jwks is not None
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
        scopes = str(claims.get("scope", "")).split()
        if rule == REPORT_RULE and REPORT_SCOPE not in scopes:
            raise TokenRejected(
                "scope",
                f"token lacks the {REPORT_SCOPE!r} scope",
                status=403,
                error="insufficient_scope",
            )
        if rule == USER_RULE and REPORT_SCOPE in scopes:
            raise TokenRejected("report_token", "a worker's report token is not a user token")
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
    """RFC 7519 NumericDate: a JSON number, never a numeric string, never NaN or infinity,
    and a date (0 to the end of year 9999), checked before any arithmetic on it."""
    for name in NUMERIC_CLAIMS:
        value = claims.get(name)
        if value is None and name not in claims:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TokenRejected("claim_type", f"{name} must be a JSON number (NumericDate)")
        if isinstance(value, float) and not math.isfinite(value):
            raise TokenRejected("claim_type", f"{name} must be a finite number")
        if not 0 <= value <= LATEST_NUMERIC_DATE:
            raise TokenRejected(
                "claim_range",
                f"{name} must be a date from 0 to {LATEST_NUMERIC_DATE} (the end of year 9999)",
            )


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
