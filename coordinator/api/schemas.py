"""HTTP response schemas, separate from events and stored rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class SyncResponse(BaseModel):
    """Answer to POST /sync/smart; the first five fields are the mail client's original ones."""

    success: bool = True
    stats: dict[str, Any] = Field(default_factory=dict)
    message: str
    task_id: str
    in_progress: bool = True
    reused: bool = Field(description="True when the click joined a sync already running")
    sync_type: Literal["full", "incremental"] = Field(description="Type of the running sync")
    started_at: datetime
    lease_expires_at: datetime
    version: int = Field(description="Stream version after this command; for read-your-writes")


class ErrorResponse(BaseModel):
    """Every 4xx/5xx body: a reason a person can act on."""

    detail: str


class Health(BaseModel):
    status: Literal["ok"] = "ok"
