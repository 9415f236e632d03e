"""Request dependencies as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from coordinator.api.auth import user_from_header
from coordinator.bootstrap import Wiring
from coordinator.settings import Settings


def get_wiring(request: Request) -> Wiring:
    wiring: Wiring = request.app.state.wiring
    return wiring


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_user_id(
    settings: Annotated[Settings, Depends(get_settings)],
    authorization: Annotated[str | None, Header()] = None,
) -> str:
    return user_from_header(authorization, settings.jwt_secret.get_secret_value())


WiringDep = Annotated[Wiring, Depends(get_wiring)]
UserId = Annotated[str, Depends(get_user_id)]
