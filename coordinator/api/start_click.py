"""A start click's command and answer, one definition for both ways a click comes in: the
POST /sync/smart route and the start shortcut in front of the router."""

from __future__ import annotations

from coordinator.api.input_rules import client_name
from coordinator.api.schemas import SyncResponse
from coordinator.service.outcomes import Outcome, StartOutcome
from core.domain.commands import RequestMeta, StartRequested

MESSAGES = {
    "started": "Sync started",
    "joined": "Sync already running; joined it",
    "queued": "An incremental sync is running; the full sync starts when it ends",
}


def start_command(
    user_id: str,
    force_full: bool,
    idempotency_key: str | None,
    correlation_id: str,
    user_agent: str | None,
) -> StartRequested:
    """The command a click asks for."""
    meta = RequestMeta(
        correlation_id=correlation_id,
        idempotency_key=idempotency_key,
        client=client_name(user_agent),
    )
    return StartRequested(user_id=user_id, force_full=force_full, meta=meta)


def start_response(outcome: Outcome) -> SyncResponse:
    """What the click is answered."""
    assert isinstance(outcome, StartOutcome)
    return SyncResponse(
        message=MESSAGES[outcome.outcome],
        task_id=outcome.task_id,
        reused=outcome.reused,
        outcome=outcome.outcome,
        full_sync_queued=outcome.full_sync_queued,
        sync_type=outcome.sync_type,  # type: ignore[arg-type]
        started_at=outcome.started_at,
        lease_expires_at=outcome.lease_expires_at,
        version=outcome.version,
    )
