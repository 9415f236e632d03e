"""Real PostgreSQL and Kafka-protocol broker for the tests: given, embedded, or containers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy import make_url

from coordinator.adapters.postgres.migrate import upgrade
from coordinator.dev.embedded import start_postgres, start_tansu
from core.database import libpq_url
from tests.support.random_refs import random_name

TEMPLATE_DB = "sync_test_template"


@contextmanager
def postgres_server(backend: str, tmp: Path) -> Iterator[str]:
    """A server URL: SYNC_TEST_DATABASE_URL, a container, or embedded PostgreSQL."""
    given = os.environ.get("SYNC_TEST_DATABASE_URL")
    if given:
        yield given
    elif backend == "containers":
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16", driver="psycopg") as container:
            yield container.get_connection_url()
    else:
        server = start_postgres(tmp / "pgdata", delete_on_stop=True)
        try:
            yield server.url
        finally:
            server.stop()


@contextmanager
def kafka_broker(backend: str) -> Iterator[str]:
    """Bootstrap servers: SYNC_TEST_KAFKA_BOOTSTRAP, a container, or the Tansu broker."""
    given = os.environ.get("SYNC_TEST_KAFKA_BOOTSTRAP")
    if given:
        yield given
    elif backend == "containers":
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer() as container:
            yield container.get_bootstrap_server()
    else:
        broker = start_tansu()
        try:
            yield broker.bootstrap
        finally:
            broker.stop()


def with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def prepare_template(server_url: str) -> None:
    """A migrated template database; each isolated test copies it in milliseconds."""
    admin = libpq_url(with_database(server_url, "postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {TEMPLATE_DB}")
    upgrade(with_database(server_url, TEMPLATE_DB))


def create_database(server_url: str) -> str:
    """A new migrated database of its own, copied from the template."""
    name = random_name("sync_test")
    admin = libpq_url(with_database(server_url, "postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
    return with_database(server_url, name)
