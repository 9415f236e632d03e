"""HS256 key length and token rules that need no services."""

from __future__ import annotations

import time

import jwt
import pytest
from pydantic import SecretStr

from coordinator.api.app import create_app
from coordinator.api.auth.tokens import TokenRejected, TokenVerifier, issue_token
from coordinator.dev.supervisor import dev_secret
from core.report_scope import REPORT_SCOPE
from core.settings import Settings

KEY = "k" * 32


@pytest.mark.parametrize("secret", ["", "x", "s" * 31])
def test_a_short_hs256_key_refuses_to_start(secret: str) -> None:
    settings = Settings(
        database_url="postgresql+psycopg://127.0.0.1/none", jwt_secret=SecretStr(secret)
    )
    with pytest.raises(SystemExit, match="SYNC_JWT_SECRET"):
        create_app(settings)
    with pytest.raises(SystemExit, match="SYNC_JWT_SECRET"):
        issue_token("user", secret)


def test_a_32_byte_key_and_the_dev_secret_work(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    for secret in (KEY, dev_secret(tmp_path)):
        token = issue_token("user", secret, scope=REPORT_SCOPE)
        assert TokenVerifier(secret).reporter(token) == "user"


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"sub": "u", "exp": True}, "claim_type"),
        ({"sub": "u", "exp": None}, "claim_type"),
        ({"sub": "u", "exp": 9e9, "iat": "1"}, "claim_type"),
        ({"sub": "", "exp": 9e9}, "subject"),
        ({"sub": "x" * 257, "exp": 9e9}, "subject"),
        ({"sub": 42, "exp": 9e9}, "malformed"),
        ({"sub": "line\nbreak", "exp": 9e9}, "subject"),
        ({"exp": 9e9}, "missing_claim"),
        ({"sub": "u"}, "missing_claim"),
    ],
)
def test_claims_are_typed_and_bounded(claims: dict[str, object], reason: str) -> None:
    with pytest.raises(TokenRejected) as rejected:
        TokenVerifier(KEY).user(jwt.encode(claims, KEY, "HS256"))
    assert rejected.value.reason == reason and rejected.value.status == 401


def test_only_hs256_without_jwks() -> None:
    claims = {"sub": "u", "exp": int(time.time()) + 60}
    none_alg = jwt.encode(claims, None, "none")  # type: ignore[arg-type]
    hs512 = jwt.encode(claims, KEY * 2, "HS512")
    for token in (none_alg, hs512):
        with pytest.raises(TokenRejected) as rejected:
            TokenVerifier(KEY).user(token)
        assert rejected.value.reason == "algorithm"


def test_garbage_is_malformed_never_a_crash() -> None:
    for token in ("a.b.c", "....", "Zm9v.YmFy.YmF6", "eyJhbGciOiJIUzI1NiJ9.e30", "é.é.é"):
        with pytest.raises(TokenRejected) as rejected:
            TokenVerifier(KEY).user(token)
        assert rejected.value.reason == "malformed"
