"""`syncctl dev`: the whole system locally, embedded services for what is not configured."""

from __future__ import annotations

from coordinator.entrypoints import Commands
from core.settings import Settings


def add_parser(commands: Commands) -> None:
    parser = commands.add_parser("dev", help="run everything locally, embedded services if unset")
    parser.add_argument(
        "--kafka",
        choices=["tansu", "apache"],
        help="broker to start when SYNC_KAFKA_BOOTSTRAP is unset (default: SYNC_DEV_KAFKA, tansu)",
    )
    parser.set_defaults(run=lambda settings, args: run(settings, args.kafka))


def run(settings: Settings, kafka: str | None = None) -> int:
    from coordinator.dev.supervisor import run_dev

    if kafka:
        settings = settings.model_copy(update={"dev_kafka": kafka})
    return run_dev(settings)
