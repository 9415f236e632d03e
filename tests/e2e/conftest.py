"""API processes shared by the e2e tests of a module."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Engine

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

from tests.e2e.processes import Api, running_api
from tests.e2e.stack import Stack, running_stack


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


@pytest.fixture(scope="session")
def live_stack(server_url: str, kafka_bootstrap: str) -> Iterator[Stack]:
    """The whole system on a database of its own, for the status stream and page tests:
    short heartbeats, two streams and two running requests per user, and a demo sync slow
    enough to watch and stop (incremental: 100 messages in 4 s; full: 200 in 8 s)."""
    from consumers.mail.password_box import new_key
    from tests.e2e.test_sync_lifecycle import EVERYTHING, warm_up
    from tests.support import services

    with running_stack(
        services.create_database(server_url),
        kafka_bootstrap,
        components=EVERYTHING,
        stream_heartbeat_seconds="0.5",
        stream_max_per_user="2",
        user_active_requests="2",
        demo_messages="200",
        demo_pace="25",
        mail_key=new_key(),  # the page's mailbox part answers (no account yet) instead of 503
    ) as stack:
        warm_up(stack)
        yield stack


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium, once per module of page tests: Playwright's sync API keeps an event
    loop running in the main thread while it is open, and asyncio.run() in any later test of
    the session (the integration tier's) would fail on it."""
    from tests.e2e.page_driver import chromium

    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    from tests.e2e.page_driver import new_page

    with new_page(browser) as page:
        yield page
