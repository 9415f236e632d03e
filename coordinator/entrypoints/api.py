"""`syncctl api` as one process, or as several uvicorn workers sharing its port.

The API is CPU-bound in its HTTP layer, so one process uses one core. With
SYNC_API_WORKERS=N, uvicorn starts N processes that accept on the same socket; each has its
own pool, coalescer and transaction bound (each user has at most N waiters on their row
lock, one per process, as with N `syncctl api` processes behind a load balancer). Their
Prometheus metrics are written to a shared folder (prometheus_client's multiprocess mode)
so that /metrics, whichever worker answers it, shows the sum over all of them, and whether
other users are about is one mark all of them share (crowd.py).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from coordinator.api.admission.crowd import CROWD_FILE, new_crowd_file
from coordinator.api.auth.tokens import TokenVerifier
from coordinator.api.metrics import METRICS_DIR
from coordinator.entrypoints import Commands
from core.settings import Settings
from core.telemetry import tracing
from core.telemetry.logs import configure_logging

log = logging.getLogger("coordinator.api")


def add_parser(commands: Commands) -> None:
    parser = commands.add_parser("api", help="serve the HTTP API under uvicorn")
    parser.set_defaults(run=lambda settings, args: run(settings), service="sync-api")


def run(settings: Settings) -> int:
    """Run the API until signalled; returns the exit code."""
    import uvicorn

    from coordinator.api.admission import bounded_http
    from coordinator.api.app import create_app

    host, port = settings.api_host, settings.api_port
    # JSON lines: uvicorn's own loggers go through the root handler too.
    logs = None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG
    bounded_http.configure(settings)
    http = bounded_http.IMPORT_PATH  # the request head bounded (its size, fields and time)
    if settings.api_workers == 1:
        app = create_app(settings)
        uvicorn.run(
            app,
            host=host,
            port=port,
            http=http,
            access_log=False,
            log_level="info",
            log_config=logs,
        )
        return 0
    TokenVerifier.from_settings(settings)  # a bad key stops here, not once per worker
    given = os.environ.get(METRICS_DIR)
    folder = given or tempfile.mkdtemp(prefix="syncctl-metrics-")
    for stale in Path(folder).glob("*.db"):  # an earlier run's counts would be added in
        stale.unlink()
    os.environ[METRICS_DIR] = folder
    crowd = os.environ[CROWD_FILE] = new_crowd_file()
    log.info("%d API workers; metrics of all of them gathered in %s", settings.api_workers, folder)
    try:
        uvicorn.run(
            "coordinator.entrypoints.api:app_from_environment",
            factory=True,
            workers=settings.api_workers,
            host=host,
            port=port,
            http=http,
            access_log=False,
            log_level="info",
            log_config=logs,
        )
    finally:
        if not given:
            shutil.rmtree(folder, ignore_errors=True)
        os.unlink(crowd)
    return 0


def app_from_environment() -> object:
    """The app of one worker process, configured from the environment like its parent."""
    from coordinator.api.admission import bounded_http
    from coordinator.api.app import create_app

    settings = Settings()
    bounded_http.configure(settings)
    configure_logging(settings.log_format)
    tracing.configure(settings.otel_service_name or "sync-api", settings.traces_exporter())
    return create_app(settings)
