"""What a handled command tells its caller."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

StartKind = Literal["started", "joined", "queued"]


@dataclass(frozen=True)
class StartOutcome:
    """What a start command decided, as the caller needs to know it."""

    task_id: str
    sync_type: str
    started_at: datetime
    lease_expires_at: datetime
    reused: bool
    version: int
    expired_task_id: str | None = None
    outcome: StartKind = "started"
    full_sync_queued: bool = False
    replayed: bool = False

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["started_at"] = self.started_at.isoformat()
        body["lease_expires_at"] = self.lease_expires_at.isoformat()
        del body["replayed"]
        return body

    @classmethod
    def from_json(cls, body: dict[str, Any], *, replayed: bool) -> StartOutcome:
        return cls(
            task_id=body["task_id"],
            sync_type=body["sync_type"],
            started_at=datetime.fromisoformat(body["started_at"]),
            lease_expires_at=datetime.fromisoformat(body["lease_expires_at"]),
            reused=body["reused"],
            version=body["version"],
            expired_task_id=body.get("expired_task_id"),
            # Answers remembered before these fields existed lack them.
            outcome=body.get("outcome", "joined" if body["reused"] else "started"),
            full_sync_queued=body.get("full_sync_queued", False),
            replayed=replayed,
        )


@dataclass(frozen=True)
class TaskOutcome:
    """What a worker's report (or the reaper) changed."""

    task_id: str
    status: str
    version: int
    lease_expires_at: datetime | None


Outcome = StartOutcome | TaskOutcome
