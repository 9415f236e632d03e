"""The rows this projector process last wrote, per user: a batch reads back only what changed.

Reading every user's status and task rows back at the start of a batch, to fold the new
events onto them, cost more than writing them. The projector wrote most of those rows
itself one batch earlier, so it keeps them: an entry is the user's status row and the task
rows written with it, and the id of the transaction that wrote them. A batch still locks
the users' status rows, reading (last_version, xmin) of each; an entry is used only when
both equal what it remembers, that is when nobody wrote the row since: not another
projector that took the partition over for a while, not a `replay rebuild --swap`, not an
operator. Anything else reads the rows as before. Entries are stored only after their
transaction committed, so a batch that failed or was rolled back leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from projections.status_view import StatusRow
from projections.task_history import TaskRow

DEFAULT_CAPACITY = 20_000  # users; about 2 KB each, so some 40 MB


class Written(NamedTuple):
    """A user's rows as one committed transaction wrote them (a tuple: one per user and
    batch, where a frozen dataclass's __init__ cost a tenth of the fold)."""

    status: StatusRow
    tasks: dict[str, TaskRow]  # the tasks written with the status row, by task id
    xid: int  # the writing transaction, as PostgreSQL shows it in the row's xmin


class RowCache:
    """Users' last written rows, the least recently written dropped beyond capacity."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._entries: dict[str, Written] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def find(self, user_id: str, last_version: int, xmin: int) -> Written | None:
        """The entry if the user's row in the database is still the one it remembers."""
        entry = self._entries.get(user_id)
        if entry is None or entry.status.last_version != last_version or entry.xid != xmin:
            return None
        return entry

    def remember(self, entries: Iterable[Written]) -> None:
        """Entries of a committed transaction; each replaces the user's previous one."""
        for entry in entries:
            user_id = entry.status.user_id
            self._entries.pop(user_id, None)  # to the end: dropped last
            self._entries[user_id] = entry
        while len(self._entries) > self._capacity:
            del self._entries[next(iter(self._entries))]

    def clear(self) -> None:
        self._entries.clear()
