"""How a store says it failed; standard library only, so the in-memory store and the unit
tier need no database driver."""

from __future__ import annotations


class StoreUnavailable(Exception):
    """The database cannot be reached or did not answer in time; the caller may retry."""


class StoreBusy(StoreUnavailable):
    """The user's stream stayed locked past the lock timeout; the caller may retry."""


class ConcurrencyConflict(Exception):
    """The stream moved past the expected version; the command must be decided again."""
