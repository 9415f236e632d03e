"""Routes: request -> command -> handler -> response."""

from __future__ import annotations

from typing import Annotated
from uuid import uuid4

from fastapi import APIRouter, Header, Query, Request, status

from coordinator.api.deps import UserId, WiringDep
from coordinator.api.schemas import ErrorResponse, Health, SyncResponse
from coordinator.domain.commands import RequestMeta, StartRequested
from coordinator.service.handlers import start_sync

router = APIRouter()

ERRORS = {
    401: {"model": ErrorResponse, "description": "Missing, expired or invalid bearer token"},
    409: {"model": ErrorResponse, "description": "Version conflicts outlasted the retries"},
    422: {"model": ErrorResponse, "description": "Invalid parameters or Idempotency-Key reuse"},
    503: {"model": ErrorResponse, "description": "Database unavailable or busy; see Retry-After"},
}


@router.post(
    "/sync/smart",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SyncResponse,
    responses=ERRORS,  # type: ignore[arg-type]
)
def smart_sync(
    request: Request,
    user_id: UserId,
    wiring: WiringDep,
    force_full: Annotated[
        bool, Query(description="Ask for a full sync instead of incremental")
    ] = False,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)
    ] = None,
) -> SyncResponse:
    """Start a sync for the caller, or join the one already running."""
    correlation_id = request.headers.get("X-Request-ID") or str(uuid4())
    command = StartRequested(
        user_id=user_id,
        force_full=force_full,
        meta=RequestMeta(correlation_id=correlation_id, idempotency_key=idempotency_key),
    )
    outcome = start_sync(command, wiring.deps)
    return SyncResponse(
        message="Sync already running; joined it" if outcome.reused else "Sync started",
        task_id=outcome.task_id,
        reused=outcome.reused,
        sync_type=outcome.sync_type,  # type: ignore[arg-type]
        started_at=outcome.started_at,
        lease_expires_at=outcome.lease_expires_at,
        version=outcome.version,
    )


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is alive."""
    return Health()


@router.get("/readyz", response_model=Health, responses={503: {"model": ErrorResponse}})
def readyz(wiring: WiringDep) -> Health:
    """The database answers."""
    wiring.ping_database()
    return Health()
