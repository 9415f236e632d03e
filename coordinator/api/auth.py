"""Bearer JWT authentication: HS256, `sub` is the user id, `exp` required."""

from __future__ import annotations

import time

import jwt
from fastapi import HTTPException, status

MAX_USER_ID_LENGTH = 256


def unauthorized(reason: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=reason,
        headers={"WWW-Authenticate": "Bearer"},
    )


REPORT_SCOPE = "sync:report"


def user_from_header(authorization: str | None, secret: str, scope: str | None = None) -> str:
    """The user id from an `Authorization: Bearer <JWT>` header, or a 401 (403 without scope)."""
    if not authorization:
        raise unauthorized("missing Authorization header")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("Authorization must be 'Bearer <token>'")
    try:
        claims = jwt.decode(
            token.strip(),
            secret,
            algorithms=["HS256"],
            options={"require": ["exp", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise unauthorized("token expired") from None
    except jwt.InvalidTokenError as error:
        raise unauthorized(f"invalid token: {error}") from None
    subject = claims["sub"]
    if not isinstance(subject, str) or not 0 < len(subject) <= MAX_USER_ID_LENGTH:
        raise unauthorized(f"sub must be a user id of 1 to {MAX_USER_ID_LENGTH} characters")
    if scope is not None and scope not in str(claims.get("scope", "")).split():
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"token lacks the {scope!r} scope")
    return subject


def issue_token(
    user_id: str, secret: str, ttl_seconds: int = 3600, scope: str | None = None
) -> str:
    """A token for trying the API (`syncctl token`) or for a worker's reports (scope)."""
    now = int(time.time())
    claims: dict[str, object] = {"sub": user_id, "iat": now, "exp": now + ttl_seconds}
    if scope:
        claims["scope"] = scope
    return jwt.encode(claims, secret, "HS256")
