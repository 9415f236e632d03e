"""Tokens already verified, so a client's repeated requests skip the signature check.

A click storm or a worker's progress reports send the same bearer token again and again;
verifying its signature and claims each time was a fifth of the API's CPU per request. A
token that passed is remembered, by its exact text, until it expires or for at most
`max_age` seconds (so a key withdrawn from the identity provider's JWKS stops being honoured
soon), in a bounded map that forgets the least recently used first. Failures are never kept.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict


class TokenCache:
    """(token, rule) -> user id, until min(exp, verified + max_age)."""

    def __init__(self, size: int = 10_000, max_age: float = 60.0) -> None:
        self._size, self._max_age = size, max_age
        self._entries: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, token: str, rule: str) -> str | None:
        """The user id this token was verified for under this rule, if still valid."""
        key = (token, rule)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            user_id, until = entry
            if time.time() >= until:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return user_id

    def put(self, token: str, rule: str, user_id: str, expires_at: float) -> None:
        """Remember a token that passed every check; `expires_at` is its `exp` claim."""
        if self._size <= 0:
            return
        until = min(expires_at, time.time() + self._max_age)
        with self._lock:
            self._entries[(token, rule)] = (user_id, until)
            self._entries.move_to_end((token, rule))
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
