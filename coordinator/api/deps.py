"""Request dependencies as Annotated aliases.

They are `async def`: FastAPI runs a sync dependency in the thread pool, and those hops
cost more than an HS256 check. Only a JWKS verification, which may fetch keys, hops.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from coordinator.api.auth.tokens import TokenVerifier
from coordinator.api.input_rules import HEADER_PATTERN, MAX_HEADER_TEXT, TASK_ID_PATTERN
from coordinator.api.metrics import CommandMetrics
from coordinator.bootstrap import Wiring
from core.settings import Settings

bearer = HTTPBearer(
    auto_error=False,
    description="A JWT: the user's token, or a worker's HS256 token with scope sync:report",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


async def get_wiring(request: Request) -> Wiring:
    wiring: Wiring = request.app.state.wiring
    return wiring


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_metrics(request: Request) -> CommandMetrics:
    metrics: CommandMetrics = request.app.state.metrics
    return metrics


def _verifier(request: Request) -> TokenVerifier:
    verifier: TokenVerifier = request.app.state.tokens
    return verifier


async def get_user_id(request: Request, credentials: Credentials) -> str:
    verifier = _verifier(request)
    token = credentials.credentials if credentials else None
    if verifier.jwks is not None:
        # A user token verified before needs no key: only a new one may wait for a JWKS fetch.
        known = verifier.user_at_once(token) if token else None
        if known is not None:
            return known
        return await run_in_threadpool(verifier.user, token)
    return verifier.user(token)


async def get_reporter_id(request: Request, credentials: Credentials) -> str:
    """The user whose task a worker reports on; the token must carry the report scope."""
    return _verifier(request).reporter(credentials.credentials if credentials else None)


async def get_correlation_id(
    request: Request,
    x_request_id: Annotated[
        str | None,
        Header(
            max_length=MAX_HEADER_TEXT,
            pattern=HEADER_PATTERN,
            description="Correlation id echoed into events and error documents",
        ),
    ] = None,
) -> str:
    correlation_id: str = request.state.correlation_id
    return correlation_id


WiringDep = Annotated[Wiring, Depends(get_wiring)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[CommandMetrics, Depends(get_metrics)]
UserId = Annotated[str, Depends(get_user_id)]
ReporterId = Annotated[str, Depends(get_reporter_id)]
CorrelationId = Annotated[str, Depends(get_correlation_id)]
TaskId = Annotated[
    str, Path(max_length=64, pattern=TASK_ID_PATTERN, description="A task id this API returned")
]
