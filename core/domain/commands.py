"""Commands: what a caller asks the UserSync aggregate to do."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

from core.domain.events import Trigger


@dataclass(frozen=True)
class RequestMeta:
    """Where a command came from, copied into every event it causes."""

    correlation_id: str
    command_id: str = field(default_factory=lambda: str(uuid4()))
    idempotency_key: str | None = None
    traceparent: str | None = None  # W3C trace context of the command, when traced
    client: str | None = None  # who asked: the caller's User-Agent, cleaned and clipped


@dataclass(frozen=True)
class StartRequested:
    """The user pressed Sync, or a watcher saw new mail: start a sync, or join the live one
    (a notice also queues one follow-up behind it)."""

    user_id: str
    force_full: bool
    meta: RequestMeta
    trigger: Trigger = "click"


@dataclass(frozen=True)
class ReportProgress:
    """A worker says how far the task got; renews the lease."""

    user_id: str
    task_id: str
    percent: float
    stats: dict[str, Any]
    meta: RequestMeta


@dataclass(frozen=True)
class CompleteSync:
    """A worker finished the task."""

    user_id: str
    task_id: str
    stats: dict[str, Any]
    meta: RequestMeta


@dataclass(frozen=True)
class FailSync:
    """A worker gave up on the task."""

    user_id: str
    task_id: str
    error: str
    meta: RequestMeta


@dataclass(frozen=True)
class ExpireStaleSync:
    """The reaper asks to expire the user's task if its lease has run out."""

    user_id: str
    meta: RequestMeta


@dataclass(frozen=True)
class CancelSync:
    """The task's owner pressed Stop."""

    user_id: str
    task_id: str
    meta: RequestMeta


Command = StartRequested | ReportProgress | CompleteSync | FailSync | ExpireStaleSync | CancelSync
TaskCommand = ReportProgress | CompleteSync | FailSync | CancelSync
