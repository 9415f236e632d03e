"""`syncctl webhooks`: the dispatcher; `webhooks rejected list|resend`: events refused for good."""

from __future__ import annotations

import argparse
import json
import logging
import threading

import httpx

from consumers.webhook_sender import Receiver, Stopping, WebhookSender, receiver_from
from consumers.webhook_store import Rejection, WebhookStore
from coordinator.entrypoints import Commands
from core.settings import Settings

log = logging.getLogger("consumers.webhook_dispatcher")

RESEND_ATTEMPTS = 3


def add_parser(commands: Commands) -> None:
    parser = commands.add_parser(
        "webhooks",
        help="POST SyncCompleted/SyncFailed/SyncCancelled to SYNC_WEBHOOK_URL; "
        "`webhooks rejected list|resend` (syncctl webhooks --help)",
        description="Without arguments: run the webhook dispatcher. `rejected`: events a "
        "receiver refused for good (a 4xx), with its answer, and sending them again.",
    )
    parser.set_defaults(run=lambda settings, args: run(settings), service="sync-webhooks")
    groups = parser.add_subparsers(dest="group", metavar="{rejected}")
    rejected = groups.add_parser("rejected", help="events a receiver refused for good")
    actions = rejected.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="event, user, status, answer, time")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    listing.set_defaults(run=run_rejected, service=None)
    resend = actions.add_parser(
        "resend", help="send again to SYNC_WEBHOOK_URL (after the receiver was fixed)"
    )
    which = resend.add_mutually_exclusive_group(required=True)
    which.add_argument("--event-id", action="append", help="repeat for several")
    which.add_argument("--all", action="store_true", help="every rejected event")
    resend.set_defaults(run=run_rejected, service=None)


def run(settings: Settings) -> int:
    """The dispatcher, until SIGTERM or SIGINT."""
    from consumers.webhook_dispatcher import TERMINAL, WebhookDispatcher
    from consumers.webhook_store import WebhookStore
    from core.kafka.event_source import EventSource, SourceConfig
    from core.stopping import stop_on_signals

    receiver = receiver_from(settings)
    stop = stop_on_signals()
    store = WebhookStore(settings.require_database_url())
    source = EventSource(
        SourceConfig(
            bootstrap=settings.require_kafka_bootstrap(),
            topic=settings.kafka_topic,
            group=settings.webhook_group,
            max_poll_interval_ms=settings.consumer_max_poll_interval_ms,
            instance_id=settings.consumer_instance_id,
            # One record per poll: a receiver's retries then delay the next poll by one
            # event's backoff, not a whole batch's, which keeps the group membership.
            max_records=1,
        )
    )
    client = httpx.Client(timeout=receiver.timeout_seconds)
    log.info("dispatching %s to %s", sorted(TERMINAL), receiver.url)
    try:
        WebhookDispatcher(
            source, store, WebhookSender(receiver, stop, client), receiver, stop
        ).run()
    finally:
        client.close()
        source.close()
        store.close()
    return 0


def run_rejected(settings: Settings, args: argparse.Namespace) -> int:
    """`webhooks rejected list|resend`; returns the exit code."""
    store = WebhookStore(settings.require_database_url())
    try:
        if args.action == "list":
            return list_rejections(store.rejections(), args.format)
        receiver = receiver_from(settings, "syncctl webhooks rejected resend")
        return resend(store, receiver, None if args.all else args.event_id)
    finally:
        store.close()


def list_rejections(rejections: list[Rejection], form: str) -> int:
    if form == "json":
        rows = [
            {
                "event_id": r.event_id,
                "event_type": r.event_type,
                "user_id": r.user_id,
                "receiver": r.receiver,
                "status_code": r.status_code,
                "response": r.response_excerpt,
                "attempts": r.attempts,
                "rejected_at": r.rejected_at.isoformat(),
            }
            for r in rejections
        ]
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'REJECTED AT':<26}{'EVENT':<15}{'EVENT ID':<38}{'USER':<24}{'STATUS':<8}ANSWER")
    for r in rejections:
        answer = " ".join(r.response_excerpt.split())[:60]
        print(
            f"{r.rejected_at.isoformat(timespec='seconds'):<26}{r.event_type:<15}"
            f"{r.event_id:<38}{r.user_id[:23]:<24}{r.status_code!s:<8}{answer}"
        )
    print(f"{len(rejections)} rejected event(s)")
    return 0


def resend(store: WebhookStore, receiver: Receiver, event_ids: list[str] | None) -> int:
    """Send each chosen rejection again; 0 only if every one was acknowledged."""
    chosen = store.rejections(event_ids)
    unknown = sorted(set(event_ids or ()) - {r.event_id for r in chosen})
    if unknown:
        print(f"not rejected events (see `rejected list`): {', '.join(unknown)}")
        return 1
    all_acknowledged = True
    with httpx.Client(timeout=receiver.timeout_seconds) as client:
        sender = WebhookSender(receiver, threading.Event(), client, RESEND_ATTEMPTS)
        for rejection in chosen:
            all_acknowledged &= _resend_one(store, receiver, sender, rejection)
    return 0 if all_acknowledged else 1


def _resend_one(
    store: WebhookStore, receiver: Receiver, sender: WebhookSender, rejection: Rejection
) -> bool:
    event_id = rejection.event_id
    try:
        sent = sender.send(rejection.envelope)
    except Stopping as error:
        print(f"{event_id}: not delivered, still rejected: {error}")
        return False
    if rejection.receiver != receiver.url:
        store.forget(rejection.receiver, event_id)
    if sent.acknowledged:
        store.record(receiver.url, event_id, sent.attempts)
        print(f"{event_id}: acknowledged by {receiver.url} (HTTP {sent.status_code})")
        return True
    store.reject(receiver.url, rejection.envelope, sent.status_code, sent.response, sent.attempts)
    print(f"{event_id}: rejected again: HTTP {sent.status_code} {sent.response[:200]!r}")
    return False
