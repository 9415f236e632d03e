"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from coordinator.api.deps import WiringDep
from coordinator.api.problems.openapi import ALWAYS, problem_responses
from coordinator.api.schemas import Health

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, responses=problem_responses(*ALWAYS))
def healthz() -> Health:
    """The process is alive."""
    return Health()


@router.get("/readyz", response_model=Health, responses=problem_responses(*ALWAYS, 503))
def readyz(wiring: WiringDep) -> Health:
    """The database answers."""
    wiring.ping_database()
    return Health()


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        **problem_responses(*ALWAYS),
    },
)
def metrics(request: Request) -> PlainTextResponse:
    """Prometheus text exposition format."""
    body = generate_latest(request.app.state.registry)
    return PlainTextResponse(body, media_type=CONTENT_TYPE_LATEST)
