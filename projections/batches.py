"""One polled batch into the views: fold each user's new events in memory, one row per user."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from core.domain.events import Envelope, SyncStarted
from core.kafka.event_source import Delivery
from projections.row_cache import RowCache, Written
from projections.status_view import StatusRow, fold_status
from projections.store import ProjectionBatch, ProjectionStore
from projections.task_history import TaskRow, fold_task

log = logging.getLogger("projections.projector")


@dataclass(frozen=True)
class LagReport:
    """Unconsumed records per partition, written along with a batch."""

    group_id: str
    topic: str
    partitions: dict[int, int]


def apply_batch(
    store: ProjectionStore, deliveries: Sequence[Delivery], lag: LagReport | None = None
) -> int:
    """Apply a batch in one transaction; returns how many events it applied."""
    by_user: dict[str, dict[int, Envelope]] = {}
    for d in deliveries:
        envelope = d.envelope
        received = by_user.get(envelope.user_id)
        if received is None:
            by_user[envelope.user_id] = {envelope.version: envelope}
        else:
            received[envelope.version] = envelope
    if not by_user and lag is None:
        return 0
    with store.transaction() as tx:
        statuses, tasks = _current_rows(tx, store.written, by_user)
        pending = {
            user: _unapplied(tx, statuses.get(user), received) for user, received in by_user.items()
        }
        tasks.update(tx.load_tasks(_unknown_tasks(pending, tasks.keys())))
        # Every row this transaction writes will show its id as xmin.
        xid = tx.writer_xid() if any(pending.values()) else 0
        written = _fold(statuses, tasks, pending, xid)
        tx.save([w.status for w in written], [t for w in written for t in w.tasks.values()])
        if lag is not None:
            tx.record_lag(lag.group_id, lag.topic, lag.partitions)
    store.written.remember(written)  # only once committed
    return sum(len(events) for events in pending.values())


def _current_rows(
    tx: ProjectionBatch, cache: RowCache, users: Collection[str]
) -> tuple[dict[str, StatusRow], dict[str, TaskRow]]:
    """The users' status rows, locked, and the task rows remembered with them: from the
    cache where the database still holds what this process wrote, else read."""
    statuses: dict[str, StatusRow] = {}
    tasks: dict[str, TaskRow] = {}
    unknown = []
    for user, (version, xmin) in tx.lock_status(users).items():
        entry = cache.find(user, version, xmin)
        if entry is None:
            unknown.append(user)
        else:
            statuses[user] = entry.status
            tasks.update(entry.tasks)
    statuses.update(tx.load_status(unknown))
    return statuses, tasks


def _unknown_tasks(pending: dict[str, list[Envelope]], known: Collection[str]) -> set[str]:
    """Tasks the events are about that are neither known nor started by the events: a task
    started in this batch has no row yet, so only older tasks are read."""
    named: set[str] = set()
    started: set[str] = set()
    for events in pending.values():
        for envelope in events:
            data = envelope.data
            (started if isinstance(data, SyncStarted) else named).add(data.task_id)
    return {task_id for task_id in named - started if task_id not in known}


def _fold(
    statuses: dict[str, StatusRow],
    tasks: dict[str, TaskRow],
    pending: dict[str, list[Envelope]],
    xid: int,
) -> list[Written]:
    """Each user's status and task rows the pending events change, in their final state."""
    written: list[Written] = []
    for user, events in pending.items():
        if not events:
            continue
        status = fold_status(statuses.get(user), events)
        by_task: dict[str, list[Envelope]] = {}
        if len(events) == 1:
            by_task[events[0].data.task_id] = events
        else:
            for envelope in events:
                by_task.setdefault(envelope.data.task_id, []).append(envelope)
        changed: dict[str, TaskRow] = {}
        for task_id, task_events in by_task.items():
            task = fold_task(tasks.get(task_id), task_events)
            if task is not None:
                changed[task_id] = task
        if status is not None:
            written.append(Written(status, changed, xid))
    return written


def _unapplied(
    tx: ProjectionBatch, status: StatusRow | None, received: dict[int, Envelope]
) -> list[Envelope]:
    """Events after the checkpoint, gaps filled from the event store, up to the first hole."""
    checkpoint = status.last_version if status else 0
    if len(received) == 1:  # the common case under load: one event of the user per batch
        [(version, envelope)] = received.items()
        if version == checkpoint + 1:
            return [envelope]
    # Versions at or below the checkpoint were applied before: a redelivery.
    fresh = {v: e for v, e in received.items() if v > checkpoint}
    if not fresh:
        return []
    newest, any_event = max(fresh), next(iter(fresh.values()))
    if len(fresh) < newest - checkpoint:
        for stored in tx.missing_events(any_event.stream_id, checkpoint, newest):
            fresh.setdefault(stored.version, stored)
    events: list[Envelope] = []
    for version in range(checkpoint + 1, newest + 1):
        if version not in fresh:
            # Applying past a hole would move the checkpoint over it for good.
            log.error("%s has no version %d in the event store", any_event.user_id, version)
            break
        events.append(fresh[version])
    return events
