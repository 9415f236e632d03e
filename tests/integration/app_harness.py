"""The real app in-process against real PostgreSQL, and tokens for it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import uuid4

import jwt
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, text

from coordinator.api.app import create_app
from core.settings import Settings

SECRET = f"integration-secret-{uuid4().hex}"


def settings_for(database_url: str, **overrides: Any) -> Settings:
    return Settings(database_url=database_url, jwt_secret=SecretStr(SECRET), **overrides)


@contextmanager
def running_app(settings: Settings) -> Iterator[TestClient]:
    """The app with its lifespan run; server errors come back as responses, as clients see them."""
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def hs256(claims: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
    return jwt.encode(claims, SECRET, "HS256", headers=headers)


def user_token(user: str, **claims: Any) -> str:
    return hs256({"sub": user, "exp": int(time.time()) + 600, **claims})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def events_of(engine: Engine, user: str) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT event_type FROM events WHERE stream_id = :s ORDER BY version"),
            {"s": f"UserSync-{user}"},
        ).all()
    return [row[0] for row in rows]
