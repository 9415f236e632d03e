"""HTTP response schemas, separate from events and stored rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from coordinator.api.input_rules import ErrorText, Percent, Stats
from core.domain.events import StartReason


class SyncResponse(BaseModel):
    """Answer to POST /sync/smart; the first five fields are the mail client's original ones."""

    success: bool = True
    stats: dict[str, Any] = Field(default_factory=dict)
    message: str
    task_id: str
    in_progress: bool = True
    reused: bool = Field(description="True when the click joined a sync already running")
    outcome: Literal["started", "joined", "queued"] = Field(
        description="started: this click started a task; joined: it joined the running one; "
        "queued: its full sync waits behind the running incremental one (reused stays true)"
    )
    full_sync_queued: bool = Field(
        False, description="A full sync waits behind the running task and starts when it ends"
    )
    sync_type: Literal["full", "incremental"] = Field(description="Type of the running sync")
    started_at: datetime
    lease_expires_at: datetime
    version: int = Field(description="Stream version after this command; for read-your-writes")


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class StatusResponse(BaseModel):
    """The caller's status view row (the mail client's UserSyncStatus fields and more)."""

    user_id: str
    task_id: str | None = None
    is_syncing: bool = False
    status: str = Field(
        "none", description="none, running, completed, failed, expired or cancelled"
    )
    sync_type: str | None = None
    started_at: datetime | None = None
    updated_at: datetime | None = None
    lease_expires_at: datetime | None = None
    progress_percentage: float = 0.0
    current_stats: dict[str, Any] = Field(default_factory=dict)
    error_message: str | None = None
    full_sync_queued: bool = Field(
        False, description="A full sync waits behind the running task and starts when it ends"
    )
    follow_up_queued: bool = Field(
        False,
        description="New mail was noticed while the task runs: an incremental sync starts "
        "when it ends",
    )
    version: int = Field(0, description="Last stream version the view has applied")
    caught_up: bool = Field(True, description="False if min_version was not reached in time")


class TaskResponse(BaseModel):
    """One task of the caller's history."""

    task_id: str
    sync_type: str
    status: str
    started_at: datetime
    finished_at: datetime | None = None
    lease_expires_at: datetime | None = None
    reuse_count: int = 0
    progress_percentage: float = 0.0
    stats: dict[str, Any] = Field(default_factory=dict)
    error_message: str | None = None
    replaces_task_id: str | None = None
    start_reason: StartReason | None = Field(
        None,
        description="Why it started: a click found no live task (first_click), a click "
        "replaced a task whose lease ran out (replaced_expired), the coordinator started a "
        "full sync that waited behind the task before (queued_full_sync), a watcher noticed "
        "new mail with no sync running (new_mail), or the coordinator started the incremental "
        "sync new mail queued behind the task before (queued_follow_up)",
    )


class TaskPage(BaseModel):
    """Newest tasks first; pass next_cursor as `cursor` for the page after."""

    tasks: list[TaskResponse]
    next_cursor: str | None = None


class ProgressReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    percent: Percent
    stats: Stats = Field(default_factory=dict)


class CompletionReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stats: Stats = Field(default_factory=dict)


class FailureReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    error: ErrorText


class CancelResponse(BaseModel):
    """Answer to a cancel: the task is over; its worker stops."""

    task_id: str
    status: Literal["cancelled"] = "cancelled"
    version: int = Field(description="Stream version after this command; for read-your-writes")


class ReportResponse(BaseModel):
    """The task's state after a worker's report."""

    task_id: str
    status: str
    version: int
    lease_expires_at: datetime | None = None
