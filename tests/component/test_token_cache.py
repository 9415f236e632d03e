"""Verified tokens are remembered, but never past their exp, their max age or a failed check."""

from __future__ import annotations

import time

import jwt
import pytest

from coordinator.api.auth.token_cache import TokenCache
from coordinator.api.auth.tokens import (
    USER_RULE,
    TokenRejected,
    TokenVerifier,
    issue_token,
)
from core.report_scope import REPORT_SCOPE

KEY = "k" * 32


def test_a_repeated_token_skips_the_signature_check(monkeypatch: pytest.MonkeyPatch) -> None:
    verifier = TokenVerifier(KEY)
    token = issue_token("alice", KEY)
    assert verifier.user(token) == "alice"
    calls = []
    monkeypatch.setattr(jwt, "decode", lambda *a, **k: calls.append(a))
    assert verifier.user(token) == "alice"
    assert calls == []


def test_rules_are_kept_apart() -> None:
    verifier = TokenVerifier(KEY)
    token = issue_token("alice", KEY)
    assert verifier.user(token) == "alice"
    with pytest.raises(TokenRejected) as refused:
        verifier.reporter(token)  # verified as a user token, still lacks the report scope
    assert refused.value.status == 403
    report = issue_token("alice", KEY, scope=REPORT_SCOPE)
    assert verifier.reporter(report) == "alice" == verifier.reporter(report)


def test_a_failure_is_never_remembered() -> None:
    verifier = TokenVerifier(KEY)
    forged = jwt.encode({"sub": "alice", "exp": time.time() + 60}, "x" * 32, "HS256")
    for _ in range(2):
        with pytest.raises(TokenRejected, match="signature"):
            verifier.user(forged)
    assert verifier.cache.get(forged, USER_RULE) is None
    assert verifier.admission_user(forged) is None


def test_the_gate_verifies_a_new_hs256_token_once_for_the_route_after_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    verifier = TokenVerifier(KEY)
    token = issue_token("alice", KEY)
    assert verifier.admission_user(token) == "alice"  # verified at the gate, then cached
    monkeypatch.setattr(jwt, "decode", lambda *a, **k: pytest.fail("verified twice"))
    assert verifier.user(token) == "alice"


def test_an_entry_ends_at_exp(monkeypatch: pytest.MonkeyPatch) -> None:
    verifier = TokenVerifier(KEY)
    token = jwt.encode({"sub": "alice", "exp": int(time.time()) + 2}, KEY, "HS256")
    assert verifier.user(token) == "alice"
    assert verifier.cache.get(token, USER_RULE) == "alice"
    later = time.time() + 3
    monkeypatch.setattr(time, "time", lambda: later)
    assert verifier.cache.get(token, USER_RULE) is None  # the token is checked in full again


def test_max_age_and_size_bound_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    cache = TokenCache(size=2, max_age=10)
    far = time.time() + 3600
    for name in ("a", "b", "c"):
        cache.put(name, "rule", name, far)
    assert cache.get("a", "rule") is None  # least recently used, forgotten
    assert cache.get("b", "rule") == "b" and cache.get("c", "rule") == "c"
    assert cache.get("b", "other rule") is None
    later = time.time() + 11
    monkeypatch.setattr(time, "time", lambda: later)
    assert cache.get("b", "rule") is None
    off = TokenCache(size=0)
    off.put("a", "rule", "a", far)
    assert off.get("a", "rule") is None


def test_a_cached_report_token_is_known_to_the_gate_but_never_a_user() -> None:
    verifier = TokenVerifier(KEY)
    report = issue_token("alice", KEY, scope=REPORT_SCOPE)
    assert verifier.reporter(report) == "alice"
    assert verifier.admission_user(report) == "alice"  # waits in alice's line
    assert verifier.user_at_once(report) is None
    with pytest.raises(TokenRejected) as refused:
        verifier.user(report)
    assert (refused.value.status, refused.value.reason) == (401, "report_token")
