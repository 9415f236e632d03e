"""Commands: what a caller asks the UserSync aggregate to do."""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import uuid4


@dataclass(frozen=True)
class RequestMeta:
    """Where a command came from, copied into every event it causes."""

    correlation_id: str
    command_id: str = field(default_factory=lambda: str(uuid4()))
    idempotency_key: str | None = None


@dataclass(frozen=True)
class StartRequested:
    """The user pressed Sync: start a sync, or join the live one."""

    user_id: str
    force_full: bool
    meta: RequestMeta
