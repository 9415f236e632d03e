"""Writing violations as they are found: a table or one JSON document, never held whole."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TextIO

from coordinator.replay.records import Violation


@dataclass
class Tally:
    """What a check went through and what it found."""

    events: int = 0
    streams: int = 0
    records: int = 0
    by_rule: Counter[str] = field(default_factory=Counter)

    @property
    def violations(self) -> int:
        """Violations of every rule."""
        return sum(self.by_rule.values())

    def summary(self, source: str) -> str:
        """One line for the table format."""
        seen = f"{self.events:,} events in {self.streams:,} streams"
        if source == "kafka":
            seen = f"{self.records:,} topic records against {seen}"
        if not self.by_rule:
            return f"verified {seen}: no violations"
        rules = ", ".join(f"{rule} {n}" for rule, n in sorted(self.by_rule.items()))
        return f"verified {seen}: {self.violations} violations ({rules})"

    def to_json(self, source: str) -> dict[str, Any]:
        """The summary for the JSON format."""
        return {
            "source": source,
            "events": self.events,
            "streams": self.streams,
            "records": self.records,
            "violations": self.violations,
            "by_rule": dict(sorted(self.by_rule.items())),
        }


class ViolationWriter:
    """Prints violations one by one and the summary at the end."""

    def __init__(self, out: TextIO, fmt: str, source: str) -> None:
        self._out = out
        self._json = fmt == "json"
        self._source = source
        self._written = 0
        self.tally = Tally()
        if self._json:
            out.write('{"violations": [')

    def emit(self, violation: Violation) -> None:
        """Count and print one violation."""
        self.tally.by_rule[violation.rule] += 1
        if self._json:
            separator = "," if self._written else ""
            self._out.write(f"{separator}\n  {json.dumps(violation.to_json())}")
        else:
            if not self._written:  # a clean run prints its summary line only
                self._out.write(f"{'RULE':<22}  {'STREAM':<40}  {'VERSION':>7}  DETAIL\n")
            version = "-" if violation.version is None else str(violation.version)
            self._out.write(
                f"{violation.rule:<22}  {violation.stream_id:<40}  {version:>7}  "
                f"{violation.detail}\n"
            )
        self._written += 1

    def close(self) -> None:
        """Print the summary (and close the JSON document)."""
        if self._json:
            summary = json.dumps(self.tally.to_json(self._source))
            self._out.write(f'{chr(10) if self._written else ""}], "summary": {summary}}}\n')
        else:
            self._out.write(self.tally.summary(self._source) + "\n")
