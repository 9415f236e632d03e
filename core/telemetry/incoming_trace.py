"""The caller's W3C trace context, kept for the request even while traces are off.

With traces on, the server span continues the caller's trace and the commands carry its
traceparent. With traces off (the default) no span exists; the caller's own traceparent is
carried instead, so the events and their Kafka records still name the caller's trace.
"""

from __future__ import annotations

import re
from contextvars import ContextVar

# version 00: trace id (32 hex, not all zeros), parent id (16 hex, not all zeros), flags.
_TRACEPARENT = re.compile(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")
_incoming: ContextVar[str | None] = ContextVar("incoming_traceparent", default=None)


def parse(header: str | None) -> str | None:
    """The header if it is a valid version-00 traceparent, else None (ignored, as W3C says)."""
    value = (header or "").strip()
    return value if _TRACEPARENT.fullmatch(value) else None


def remember(traceparent: str | None) -> None:
    """Keep the request's traceparent for the rest of its task."""
    _incoming.set(traceparent)


def current() -> str | None:
    """The traceparent the current request came with, if it came with a valid one."""
    return _incoming.get()
