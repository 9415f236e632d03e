"""The W3C traceparent as text (version-traceid-spanid-flags); standard library only."""

from __future__ import annotations


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id inside a traceparent (32 hex digits), or None."""
    parts = (traceparent or "").split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None
