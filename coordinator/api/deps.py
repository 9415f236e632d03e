"""Request dependencies as Annotated aliases.

They are `async def` although they do no I/O: FastAPI runs a sync dependency in the thread
pool, and those hops cost more than the JWT check itself.
"""

from __future__ import annotations

from typing import Annotated
from uuid import uuid4

from fastapi import Depends, Header, Request

from coordinator.api.auth import REPORT_SCOPE, user_from_header
from coordinator.api.metrics import CommandMetrics
from coordinator.bootstrap import Wiring
from coordinator.settings import Settings


async def get_wiring(request: Request) -> Wiring:
    wiring: Wiring = request.app.state.wiring
    return wiring


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_metrics(request: Request) -> CommandMetrics:
    metrics: CommandMetrics = request.app.state.metrics
    return metrics


async def get_user_id(
    settings: Annotated[Settings, Depends(get_settings)],
    authorization: Annotated[str | None, Header()] = None,
) -> str:
    return user_from_header(authorization, settings.jwt_secret.get_secret_value())


async def get_reporter_id(
    settings: Annotated[Settings, Depends(get_settings)],
    authorization: Annotated[str | None, Header()] = None,
) -> str:
    """The user whose task a worker reports on; the token must carry the report scope."""
    return user_from_header(authorization, settings.jwt_secret.get_secret_value(), REPORT_SCOPE)


async def get_correlation_id(
    x_request_id: Annotated[str | None, Header(max_length=200)] = None,
) -> str:
    return x_request_id or str(uuid4())


WiringDep = Annotated[Wiring, Depends(get_wiring)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[CommandMetrics, Depends(get_metrics)]
UserId = Annotated[str, Depends(get_user_id)]
ReporterId = Annotated[str, Depends(get_reporter_id)]
CorrelationId = Annotated[str, Depends(get_correlation_id)]
