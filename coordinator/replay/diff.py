"""Describing how a shadow view row and its live counterpart differ."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

MISSING_IN_LIVE = "missing in live"
MISSING_IN_SHADOW = "missing in shadow"
DIFFERS = "differs"


@dataclass(frozen=True)
class RowDiff:
    """One differing row of a view, keyed by its primary key."""

    view: str
    key: str
    kind: str
    fields: tuple[tuple[str, Any, Any], ...] = ()
    note: str = ""

    def describe(self) -> str:
        """What differs, for a person: `field: shadow X, live Y; ...`."""
        parts = [f"{name}: shadow {_show(a)}, live {_show(b)}" for name, a, b in self.fields]
        text = self.kind + (": " + "; ".join(parts) if parts else "")
        return f"{text} ({self.note})" if self.note else text


def _show(value: Any) -> str:
    return "null" if value is None else repr(value)


def _note(shadow: Mapping[str, Any], live: Mapping[str, Any]) -> str:
    """Why a row may differ without either side being wrong: the two saw different events."""
    ours, theirs = shadow.get("last_version"), live.get("last_version")
    if not isinstance(ours, int) or not isinstance(theirs, int) or ours == theirs:
        return ""
    if theirs < ours:
        return f"live is at version {theirs}, the store at {ours}: projector lag, or a lost update"
    return f"live is at version {theirs}, past the rebuild's snapshot at {ours}"


def describe_row(
    view: str, key: str, shadow: Mapping[str, Any] | None, live: Mapping[str, Any] | None
) -> RowDiff:
    """The difference between the rebuilt and the live row of one key."""
    if live is None:
        return RowDiff(view, key, MISSING_IN_LIVE)
    if shadow is None:
        return RowDiff(view, key, MISSING_IN_SHADOW, note="the store has no event that makes it")
    names = list(shadow) + [name for name in live if name not in shadow]
    fields = tuple(
        (name, shadow.get(name), live.get(name))
        for name in names
        if shadow.get(name) != live.get(name)
    )
    return RowDiff(view, key, DIFFERS, fields, _note(shadow, live))


class DiffSource(Protocol):
    """Rows that differ between a shadow view and its live view."""

    def diff(
        self, name: str
    ) -> Iterator[tuple[str, dict[str, Any] | None, dict[str, Any] | None]]: ...


def write_diff(source: DiffSource, names: Sequence[str], out: TextIO) -> dict[str, int]:
    """Print every differing row of these views, then a summary; returns the count per view."""
    counts = dict.fromkeys(names, 0)
    out.write(f"{'VIEW':<7} {'KEY':<40} DIFFERENCE\n")
    for name in names:
        for key, shadow, live in source.diff(name):
            out.write(f"{name:<7} {key:<40} {describe_row(name, key, shadow, live).describe()}\n")
            counts[name] += 1
    by_view = ", ".join(f"{name} {n}" for name, n in counts.items())
    out.write(f"{sum(counts.values())} differing rows ({by_view})\n")
    return counts
