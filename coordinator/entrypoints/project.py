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
    # Each batch allocates tens of thousands of short-lived objects: with the default
    # thresholds the collector ran every few hundred of them and walked every module
    # object loaded at start-up each time (about a sixth of the projector's CPU).
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    # Three threads share the GIL: this one polling and decoding, the writer folding, and
    # kafka-python's I/O thread. Every 5 ms a waiting thread forced a switch; with 50 ms
    # the threads mostly hand over where they block on I/O anyway, and one process applied
    # a backlog about a fifth faster (bench.end_to_end part B). A thread blocked on I/O never
    # holds the GIL, so a mostly idle projector reacts as soon as before.
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    Projector(config, stop).run()
    log.info("projector stopped")
    return 0
