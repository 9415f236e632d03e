"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from coordinator.api.deps import WiringDep
from coordinator.api.schemas import ErrorResponse, Health

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is alive."""
    return Health()


@router.get("/readyz", response_model=Health, responses={503: {"model": ErrorResponse}})
def readyz(wiring: WiringDep) -> Health:
    """The database answers."""
    wiring.ping_database()
    return Health()


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus text format."""
    return Response(generate_latest(request.app.state.registry), media_type=CONTENT_TYPE_LATEST)
