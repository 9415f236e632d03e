"""`syncctl replay audit|rebuild|verify`: arguments, wiring of the adapters, exit codes."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import TextIO

from coordinator.entrypoints import Commands
from core.settings import Settings

EXIT_OK, EXIT_FOUND, EXIT_UNUSABLE, EXIT_DIFF = 0, 1, 2, 3
EPILOG = (
    "exit codes: 0 clean; 1 audit: unknown user, verify: violations; 2 bad arguments or the "
    "command could not run; 3 rebuild: shadow and live views differ (repaired with --swap)"
)


def iso_time(text: str) -> datetime:
    """An ISO 8601 time; without an offset it is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time, e.g. 2026-01-31T09:30:00Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def add_parser(syncctl: Commands) -> None:
    """`syncctl replay` and its commands."""
    parser = syncctl.add_parser(
        "replay",
        help="audit, rebuild and verify history (syncctl replay --help)",
        description=__doc__,
        epilog=EPILOG,
    )
    parser.set_defaults(run=run)
    commands = parser.add_subparsers(dest="action", required=True)
    audit = commands.add_parser("audit", help="a user's timeline with the reason of each decision")
    audit.add_argument("--user", required=True, help="user id")
    audit.add_argument("--since", type=iso_time, help="only events at or after this time")
    audit.add_argument("--until", type=iso_time, help="only events at or before this time")
    audit.add_argument("--as-of", type=iso_time, help="also print the aggregate's state then")
    audit.add_argument("--format", choices=["table", "json"], default="table")
    rebuild = commands.add_parser("rebuild", help="replay the store into shadow views and diff")
    rebuild.add_argument("--projection", choices=["status", "tasks", "all"], default="all")
    rebuild.add_argument("--swap", action="store_true", help="promote the shadow atomically")
    rebuild.add_argument(
        "--lock-timeout", type=float, default=30.0, help="longest wait for the live views (s)"
    )
    verify = commands.add_parser("verify", help="check invariants over the whole history")
    verify.add_argument("--source", choices=["store", "kafka"], default="store")
    verify.add_argument("--format", choices=["table", "json"], default="table")
    verify.add_argument(
        "--outbox-max-age", type=float, default=300.0, help="oldest acceptable outbox row (s)"
    )


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run one replay command; returns the exit code."""
    out, err = sys.stdout, sys.stderr
    from coordinator.replay.shadow_views import RebuildBusy, SwapFailed
    from coordinator.replay.topic_reader import TopicUnavailable
    from core.store_errors import StoreUnavailable

    url = settings.require_database_url()
    try:
        if args.action == "audit":
            return _audit(url, args, out, err)
        if args.action == "rebuild":
            return _rebuild(url, args, out, err)
        return _verify(settings, url, args, out, err)
    except (StoreUnavailable, TopicUnavailable, RebuildBusy, SwapFailed) as error:
        err.write(f"syncctl replay {args.action}: {error}\n")
        return EXIT_UNUSABLE


def _audit(url: str, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from coordinator.replay.audit import run_audit
    from coordinator.replay.history import HistoryReader

    with HistoryReader(url) as history:
        return run_audit(
            history,
            args.user,
            since=args.since,
            until=args.until,
            as_of=args.as_of,
            fmt=args.format,
            out=out,
            err=err,
        )


def _rebuild(url: str, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from coordinator.replay.diff import write_diff
    from coordinator.replay.history import HistoryReader
    from coordinator.replay.progress import Progress
    from coordinator.replay.rebuild import fold_into
    from coordinator.replay.shadow_views import ShadowViews
    from coordinator.replay.swap import describe_merge, promote

    promoted = ["status", "tasks"] if args.projection == "all" else [args.projection]
    # The status shadow is always built: its last_version is the per-stream checkpoint of
    # the rebuild's snapshot, which the swap needs even when only tasks are promoted.
    built = ["status", "tasks"] if "tasks" in promoted else ["status"]
    views = ShadowViews(url)
    try:
        views.prepare(built)
        with HistoryReader(url) as history:
            progress = Progress(history.expected_events(), err)
            with_tasks = "tasks" in built
            tally = fold_into(history.events(), views, with_tasks=with_tasks, progress=progress)
            err.write(tally.summary(progress.finish(), built) + "\n")
        views.commit(built)
        differing = sum(write_diff(views, promoted, out).values())
        if differing and args.swap:
            with views.swap(promoted, args.lock_timeout) as tx:
                out.write(describe_merge(promote(tx, promoted, built)) + "\n")
        return EXIT_DIFF if differing else EXIT_OK
    finally:
        views.close()


def _verify(
    settings: Settings, url: str, args: argparse.Namespace, out: TextIO, err: TextIO
) -> int:
    from coordinator.replay.history import EventLookup, HistoryReader
    from coordinator.replay.output import ViolationWriter
    from coordinator.replay.progress import Progress
    from coordinator.replay.verify import verify_store
    from coordinator.replay.verify_topic import verify_topic

    writer = ViolationWriter(out, args.format, args.source)
    with HistoryReader(url) as history:
        if args.source == "store":
            progress = Progress(history.expected_events(), err)
            verify_store(
                history,
                writer.emit,
                writer.tally,
                outbox_max_age=args.outbox_max_age,
                progress=progress,
            )
        else:
            from coordinator.replay.topic_reader import read_topic

            bootstrap, topic = settings.require_kafka_bootstrap(), settings.kafka_topic
            lookup = EventLookup(url)
            try:
                verify_topic(
                    history, lookup, lambda: read_topic(bootstrap, topic), writer.emit, writer.tally
                )
            finally:
                lookup.close()
    writer.close()
    return EXIT_FOUND if writer.tally.violations else EXIT_OK
