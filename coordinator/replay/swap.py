"""Promoting rebuilt views to live without losing what the live projector applies meanwhile."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from coordinator.replay.rebuild import fold_into
from coordinator.replay.records import StoredEvent
from projections.status_view import StatusRow
from projections.task_history import TaskRow


class SwapPort(Protocol):
    """The swap's transaction: live views locked against writers, shadows writable."""

    def moved_streams(self) -> list[tuple[str, str]]: ...
    def events_of(self, stream_ids: Sequence[str]) -> Iterator[StoredEvent]: ...
    def forget(self, names: Sequence[str], user_ids: Sequence[str]) -> None: ...
    def write(self, statuses: Sequence[StatusRow], tasks: Sequence[TaskRow]) -> None: ...
    def merge(self, name: str) -> tuple[int, int]: ...


def promote(
    tx: SwapPort, promoted: Sequence[str], built: Sequence[str]
) -> dict[str, tuple[int, int]]:
    """Catch the shadows up with the store, then make the promoted live views equal them.

    The shadows hold the store as of the rebuild's snapshot; the projector may have applied
    later events since. With the live views locked, every stream that moved past its shadow
    row's last_version is folded again from the store as committed now, so each promoted row
    is at least as far along as the live row it replaces. Events committed after this point
    carry higher versions than the promoted checkpoints, so the projector applies them when
    they arrive and skips the older ones it may still receive: nothing is lost or doubled.
    """
    moved = tx.moved_streams()
    if moved:
        tx.forget(built, [user for _, user in moved])
        fold_into(tx.events_of([stream for stream, _ in moved]), tx, with_tasks="tasks" in built)
    return {name: tx.merge(name) for name in promoted}


def describe_merge(merged: dict[str, tuple[int, int]]) -> str:
    """What a swap changed in the live views."""
    return "swapped: " + "; ".join(
        f"{name} {written} rows written, {deleted} deleted"
        for name, (written, deleted) in merged.items()
    )
