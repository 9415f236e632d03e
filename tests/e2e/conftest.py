"""API processes shared by the e2e tests of a module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from tests.e2e.processes import Api, running_api


@pytest.fixture(scope="module")
def api(shared_database_url: str) -> Iterator[Api]:
    with running_api(shared_database_url) as api:
        yield api


def started_count(engine: Engine, user: str) -> dict[str, int]:
    from sqlalchemy import text

    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT event_type, count(*) FROM events WHERE stream_id = :s GROUP BY 1"),
            {"s": f"UserSync-{user}"},
        ).all()
    return {row[0]: row[1] for row in rows}
