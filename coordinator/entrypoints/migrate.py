"""`syncctl migrate`: apply the database migrations to SYNC_DATABASE_URL."""

from __future__ import annotations

from coordinator.entrypoints import Commands
from core.settings import Settings


def add_parser(commands: Commands) -> None:
    parser = commands.add_parser("migrate", help="apply database migrations (SYNC_DATABASE_URL)")
    parser.set_defaults(run=lambda settings, args: run(settings))


def run(settings: Settings) -> int:
    from coordinator.adapters.postgres.migrate import upgrade

    upgrade(settings.require_database_url())
    return 0
