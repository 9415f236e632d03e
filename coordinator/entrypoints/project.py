"""`syncctl project`: build the status view and task history from the topic."""

from __future__ import annotations

import gc
import logging
import sys

from coordinator.entrypoints import Commands
from core.settings import Settings

log = logging.getLogger("projections.projector")
# How long a thread may hold the GIL while another waits for it (Python's default: 5 ms).
GIL_SWITCH_SECONDS = 0.05


def add_parser(commands: Commands) -> None:
    parser = commands.add_parser(
        "project", help="build the status view and task history from Kafka"
    )
    parser.set_defaults(run=lambda settings, args: run(settings), service="sync-projector")


def run(settings: Settings) -> int:
    """Project until SIGTERM or SIGINT."""
    from core.kafka.event_source import SourceConfig
    from core.stopping import stop_on_signals
    from projections.projector import Projector, ProjectorConfig

    stop = stop_on_signals()
    source = SourceConfig(
        bootstrap=settings.require_kafka_bootstrap(),
        topic=settings.kafka_topic,
        group=settings.projector_group,
        max_poll_interval_ms=settings.consumer_max_poll_interval_ms,
        instance_id=settings.consumer_instance_id,
        max_records=2000,
    )
    config = ProjectorConfig(source=source, database_url=settings.require_database_url())
    # Start-up objects out of the collector's walks, and longer GIL turns for the three
    # threads: docs/decisions/projector-switch-interval.md.
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    Projector(config, stop).run()
    log.info("projector stopped")
    return 0
