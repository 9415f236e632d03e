"""`syncctl dev`: the whole system locally, embedded services for what is not configured."""

from __future__ import annotations

from coordinator.entrypoints import Commands
from core.settings import Settings


def add_parser(commands: Commands) -> None:
    parser = commands.add_parser("dev", help="run everything locally, embedded services if unset")
    parser.set_defaults(run=lambda settings, args: run(settings))


def run(settings: Settings) -> int:
    from coordinator.dev.supervisor import run_dev

    return run_dev(settings)
