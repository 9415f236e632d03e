"""UID sets as IMAP writes them (`1:3,6,9:12`), held as ranges (standard library only).

ESEARCH and VANISHED answer a 100,000-message folder in a few ranges; keeping the ranges,
and taking batches off their top, holds memory flat however large the folder is.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class UidSet:
    ranges: tuple[tuple[int, int], ...]  # ascending, disjoint, each (low, high) inclusive

    @staticmethod
    def parse(text: str | bytes) -> UidSet:
        """From a sequence set of plain numbers (`*` has no meaning in an answer)."""
        if isinstance(text, bytes):
            text = text.decode("ascii")
        spans = []
        for part in filter(None, text.strip().split(",")):
            low, _, high = part.partition(":")
            a, b = int(low), int(high or low)
            spans.append((min(a, b), max(a, b)))
        return UidSet.of_ranges(spans)

    @staticmethod
    def of(uids: Iterable[int]) -> UidSet:
        return UidSet.of_ranges((u, u) for u in uids)

    @staticmethod
    def of_ranges(spans: Iterable[tuple[int, int]]) -> UidSet:
        merged: list[tuple[int, int]] = []
        for low, high in sorted(spans):
            if merged and low <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(high, merged[-1][1]))
            else:
                merged.append((low, high))
        return UidSet(tuple(merged))

    def __len__(self) -> int:
        return sum(high - low + 1 for low, high in self.ranges)

    def __contains__(self, uid: object) -> bool:
        if not isinstance(uid, int):
            return False
        at = bisect.bisect_right(self.ranges, (uid, 2**63)) - 1
        return at >= 0 and self.ranges[at][0] <= uid <= self.ranges[at][1]

    def __iter__(self) -> Iterator[int]:
        for low, high in self.ranges:
            yield from range(low, high + 1)

    def batches_down(self, size: int, first: int | None = None) -> Iterator[list[int]]:
        """Batches of at most `size` UIDs (the first of at most `first`), the highest first,
        each batch descending."""
        batch: list[int] = []
        limit = min(first or size, size)
        for low, high in reversed(self.ranges):
            for uid in range(high, low - 1, -1):
                batch.append(uid)
                if len(batch) == limit:
                    yield batch
                    batch, limit = [], size
        if batch:
            yield batch

    def batches_up(self, size: int) -> Iterator[list[int]]:
        batch: list[int] = []
        for uid in self:
            batch.append(uid)
            if len(batch) == size:
                yield batch
                batch = []
        if batch:
            yield batch


def sequence_set(uids: Iterable[int]) -> str:
    """`1:3,6` for 1, 2, 3, 6: how a FETCH names a batch in few bytes."""
    return ",".join(f"{a}:{b}" if a != b else str(a) for a, b in UidSet.of(uids).ranges)
