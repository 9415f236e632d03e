"""`syncctl deadletters list|republish`: what the broker refused for good, and sending it again."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, TextIO
from uuid import UUID

from coordinator.entrypoints import Commands
from core.settings import Settings

if TYPE_CHECKING:
    from coordinator.adapters.postgres.dead_letters import DeadLetters

EXIT_OK, EXIT_UNKNOWN, EXIT_UNUSABLE = 0, 1, 2
EPILOG = (
    "exit codes: 0 done; 1 republish: some --event-id is not a dead letter (the others were "
    "moved); 2 bad arguments or the database is unreachable"
)


def event_id(text: str) -> str:
    """An event id as the store writes it (a UUID)."""
    try:
        return str(UUID(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an event id (a UUID)") from None


def add_parser(syncctl: Commands) -> None:
    """`syncctl deadletters` and its commands."""
    parser = syncctl.add_parser(
        "deadletters",
        help="list events the broker refused, republish them (syncctl deadletters --help)",
        description=__doc__,
        epilog=EPILOG,
    )
    parser.set_defaults(run=run)
    commands = parser.add_subparsers(dest="action", required=True)
    listing = commands.add_parser("list", help="every dead letter, oldest first")
    listing.add_argument("--format", choices=["table", "json"], default="table")
    republish = commands.add_parser(
        "republish", help="move dead letters back to the outbox; the relay publishes them"
    )
    which = republish.add_mutually_exclusive_group(required=True)
    which.add_argument("--event-id", type=event_id, action="append", dest="event_ids")
    which.add_argument("--all", action="store_true", help="every dead letter")


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run one deadletters command; returns the exit code."""
    out, err = sys.stdout, sys.stderr
    from coordinator.adapters.postgres.dead_letters import DeadLetters
    from core.database import make_engine
    from core.store_errors import StoreUnavailable

    engine = make_engine(settings.require_database_url(), pool_size=1)
    try:
        letters = DeadLetters(engine)
        if args.action == "list":
            return _list(letters, args.format, out)
        return _republish(letters, None if args.all else args.event_ids, out, err)
    except StoreUnavailable as error:
        err.write(f"syncctl deadletters {args.action}: {error}\n")
        return EXIT_UNUSABLE
    finally:
        engine.dispose()


def _list(letters: DeadLetters, fmt: str, out: TextIO) -> int:
    entries = letters.entries()
    if fmt == "json":
        body = {"dead_letters": [e.to_json() for e in entries], "count": len(entries)}
        out.write(json.dumps(body, indent=2) + "\n")
        return EXIT_OK
    if entries:
        out.write(
            f"{'DEAD AT':<32}  {'EVENT ID':<36}  {'USER':<24}  {'VERSION':>7}  "
            f"{'EVENT':<14}  {'BYTES':>9}  REASON\n"
        )
    for e in entries:
        version = "-" if e.version is None else str(e.version)
        out.write(
            f"{e.dead_at.isoformat():<32}  {e.event_id:<36}  {e.user_id:<24}  {version:>7}  "
            f"{e.event_type:<14}  {e.size_bytes:>9,}  {e.reason}\n"
        )
    out.write(f"{len(entries)} dead letters\n")
    return EXIT_OK


def _republish(letters: DeadLetters, event_ids: list[str] | None, out: TextIO, err: TextIO) -> int:
    moved = letters.republish(event_ids)
    for moved_id in moved:
        out.write(f"republished {moved_id}\n")
    out.write(f"{len(moved)} events moved back to the outbox\n")
    unknown = sorted(set(event_ids or []) - set(moved))
    for missing in unknown:
        err.write(f"{missing} is not a dead letter\n")
    return EXIT_UNKNOWN if unknown else EXIT_OK
