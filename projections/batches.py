"""One polled batch into the views: fold each user's new events in memory, one row per user."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from coordinator.adapters.kafka.event_source import Delivery
from coordinator.domain.events import Envelope, SyncStarted
from projections.status_view import StatusRow, apply_status
from projections.store import ProjectionBatch, ProjectionStore
from projections.task_history import TaskRow, apply_task

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
        by_user.setdefault(d.envelope.user_id, {})[d.envelope.version] = d.envelope
    if not by_user and lag is None:
        return 0
    with store.transaction() as tx:
        statuses = tx.lock_status(by_user) if by_user else {}
        pending = {
            user: _unapplied(tx, statuses.get(user), received) for user, received in by_user.items()
        }
        events = [e for user_events in pending.values() for e in user_events]
        # A task started in this batch has no row yet: only older tasks are read.
        started = {e.data.task_id for e in events if isinstance(e.data, SyncStarted)}
        tasks = tx.load_tasks({e.data.task_id for e in events} - started)
        tx.save(*_fold(statuses, tasks, pending))
        if lag is not None:
            tx.record_lag(lag.group_id, lag.topic, lag.partitions)
    return len(events)


def _fold(
    statuses: dict[str, StatusRow],
    tasks: dict[str, TaskRow],
    pending: dict[str, list[Envelope]],
) -> tuple[list[StatusRow], list[TaskRow]]:
    """The status and task rows the pending events change, each in its final state."""
    changed_statuses: list[StatusRow] = []
    changed_tasks: dict[str, TaskRow] = {}
    for user, events in pending.items():
        status = statuses.get(user)
        for envelope in events:
            status = apply_status(status, envelope)
            task = apply_task(tasks.get(envelope.data.task_id), envelope)
            if task is not None:
                tasks[task.task_id] = changed_tasks[task.task_id] = task
        if events and status is not None:
            changed_statuses.append(status)
    return changed_statuses, list(changed_tasks.values())


def _unapplied(
    tx: ProjectionBatch, status: StatusRow | None, received: dict[int, Envelope]
) -> list[Envelope]:
    """Events after the checkpoint, gaps filled from the event store, up to the first hole."""
    checkpoint = status.last_version if status else 0
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
