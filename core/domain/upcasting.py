"""Event versions: what each type is written with now, and how older data is read.

Stored and published events are never rewritten (the hash chain covers them as written, and
the topic cannot be edited); every reader upcasts on read, through `upcast`. A type's
schema_version moves on its own, only on a breaking change (docs/events.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal

# Types not named here are written with version 1.
CURRENT_VERSIONS: dict[str, int] = {"SyncStarted": 2}


def current_version(event_type: str) -> int:
    """The schema_version new events of this type are written with."""
    return CURRENT_VERSIONS.get(event_type, 1)


def upcast(event_type: str, schema_version: int, data: dict[str, Any]) -> dict[str, Any]:
    """Data written in an older schema_version, in the shape the current version has."""
    while schema_version < current_version(event_type):
        data = UPCASTERS[event_type, schema_version](data)
        schema_version += 1
    return data


def _started_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 was only ever started by a click, and did not record the client."""
    reason = "replaced_expired" if data.get("replaces_task_id") else "first_click"
    return {**data, "reason": reason, "requested_by": None}


# (event type, version) -> the step to the next version.
UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {
    ("SyncStarted", 1): _started_v1_to_v2,
}


@dataclass(frozen=True)
class SyncStartedV1:
    """A new sync task was started; it is live until lease_expires_at (as written until v2)."""

    event_type: ClassVar[str] = "SyncStarted"
    task_id: str
    sync_type: Literal["full", "incremental"]
    started_at: datetime
    lease_expires_at: datetime
    replaces_task_id: str | None = None


# Shapes of past versions, kept so their JSON Schemas stay published.
PAST_SHAPES: dict[tuple[str, int], type] = {("SyncStarted", 1): SyncStartedV1}
