"""`rebuild`: the store replayed into shadow views by the live projector's own pure functions."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import groupby
from operator import attrgetter
from typing import Protocol

from coordinator.replay.progress import Progress
from coordinator.replay.records import StoredEvent, UndecodableEvent, decode_event, to_envelope
from core.domain.events import Envelope
from projections.status_view import StatusRow, apply_status
from projections.task_history import TaskRow, apply_task

FLUSH_ROWS = 5000
TICK = 4096


class ShadowSink(Protocol):
    """Where folded rows go, a batch at a time."""

    def write(self, statuses: Sequence[StatusRow], tasks: Sequence[TaskRow]) -> None: ...


@dataclass
class BuildTally:
    """What a replay went through and produced."""

    events: int = 0
    undecodable: int = 0
    statuses: int = 0
    tasks: int = 0

    def summary(self, seconds: float, built: Sequence[str]) -> str:
        """One line for stderr once the shadows are filled."""
        skipped = f", {self.undecodable:,} undecodable events skipped" if self.undecodable else ""
        return (
            f"replayed {self.events:,} events in {seconds:.1f}s into {', '.join(built)} shadows "
            f"({self.statuses:,} status rows, {self.tasks:,} task rows{skipped})"
        )


def fold_stream(envelopes: Iterable[Envelope]) -> tuple[StatusRow | None, list[TaskRow]]:
    """One user's status row and task rows after all of their events, in version order."""
    status: StatusRow | None = None
    tasks: dict[str, TaskRow] = {}
    for envelope in envelopes:
        status = apply_status(status, envelope)
        task = apply_task(tasks.get(envelope.data.task_id), envelope)
        if task is not None:
            tasks[task.task_id] = task
    return status, list(tasks.values())


class _Decoder:
    """Envelopes of stored events, counted for the progress bar.

    Rows the code cannot read are counted and skipped, as the live projector skips
    undecodable records; `verify` names them.
    """

    def __init__(self, tally: BuildTally, progress: Progress | None) -> None:
        self._tally = tally
        self._progress = progress
        self._pending = 0

    def envelopes(self, events: Iterable[StoredEvent]) -> Iterator[Envelope]:
        for stored in events:
            self._pending += 1
            if self._pending == TICK:
                self.flush()
            try:
                yield to_envelope(stored, decode_event(stored))
            except (UndecodableEvent, KeyError):
                self._tally.undecodable += 1

    def flush(self) -> None:
        self._tally.events += self._pending
        if self._progress is not None:
            self._progress.advance(self._pending)
        self._pending = 0


def fold_into(
    events: Iterable[StoredEvent],
    sink: ShadowSink,
    *,
    with_tasks: bool = True,
    progress: Progress | None = None,
) -> BuildTally:
    """Fold events ordered by (stream, version); memory holds one stream and one batch."""
    tally = BuildTally()
    decoder = _Decoder(tally, progress)
    statuses: list[StatusRow] = []
    tasks: list[TaskRow] = []
    for _, stream in groupby(events, key=attrgetter("stream_id")):
        status, task_rows = fold_stream(decoder.envelopes(stream))
        if status is not None:
            statuses.append(status)
        if with_tasks:
            tasks.extend(task_rows)
        if len(statuses) + len(tasks) >= FLUSH_ROWS:
            _flush(sink, statuses, tasks, tally)
    _flush(sink, statuses, tasks, tally)
    decoder.flush()
    return tally


def _flush(
    sink: ShadowSink, statuses: list[StatusRow], tasks: list[TaskRow], tally: BuildTally
) -> None:
    if statuses or tasks:
        sink.write(statuses, tasks)
        tally.statuses += len(statuses)
        tally.tasks += len(tasks)
        statuses.clear()
        tasks.clear()
