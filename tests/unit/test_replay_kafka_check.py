"""The topic-against-store check, fed hand-built records and stored events."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from coordinator.replay.kafka_check import TopicCheck, mismatch, parse_record
from coordinator.replay.records import StoredEvent, TopicRecord

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def stored(stream: str, version: int) -> StoredEvent:
    meta = {"user_id": stream, "correlation_id": "req", "causation_id": "cmd"}
    event_id = f"00000000-0000-0000-{ord(stream[0]):04d}-{version:012d}"
    data = {"task_id": "t1", "error": "x", "finished_at": T0.isoformat()}
    return StoredEvent(
        event_id, f"UserSync-{stream}", version, "SyncFailed", 1, T0, data, meta, "", ""
    )


def envelope(event: StoredEvent, **changes: Any) -> dict[str, Any]:
    body = {
        "event_id": event.event_id,
        "event_type": event.event_type,
        "schema_version": event.schema_version,
        "stream_id": event.stream_id,
        "user_id": event.metadata["user_id"],
        "version": event.version,
        "occurred_at": event.occurred_at.isoformat(),
        "correlation_id": "req",
        "causation_id": "cmd",
        "data": event.data,
    }
    return body | changes


def run(
    sequence: list[tuple[str, int]],
    stored_versions: dict[str, int],
    pending: dict[str, set[int]] | None = None,
) -> set[tuple[str, str, int | None]]:
    """Feed records of (user, version) in topic order; return (rule, stream, version) found."""
    check = TopicCheck()
    found = []
    for offset, (user, version) in enumerate(sequence):
        event = stored(user, version)
        record = TopicRecord(0, offset, user, json.dumps(envelope(event)).encode())
        found += check.check(parse_record(record), event)
    streams = [(f"UserSync-{u}", v) for u, v in stored_versions.items()]
    found += check.finish(streams, pending or {})
    return {(v.rule, v.stream_id, v.version) for v in found}


CASES: dict[str, tuple[list[tuple[str, int]], dict[str, int], set[tuple[str, str, int | None]]]] = {
    "in order": ([("a", 1), ("b", 1), ("a", 2), ("b", 2)], {"a": 2, "b": 2}, set()),
    "redelivered": ([("a", 1), ("a", 2), ("a", 1), ("a", 2), ("a", 3)], {"a": 3}, set()),
    "newer than the snapshot": ([("a", 1), ("a", 2)], {"a": 1}, set()),
    "swapped": ([("a", 2), ("a", 1)], {"a": 2}, {("kafka-order", "UserSync-a", 1)}),
    "one late of three": (
        [("a", 1), ("a", 3), ("a", 4), ("a", 2)],
        {"a": 4},
        {("kafka-order", "UserSync-a", 2)},
    ),
    "missing one": ([("a", 1), ("a", 3)], {"a": 3}, {("kafka-missing", "UserSync-a", 2)}),
    "missing tail": ([("a", 1)], {"a": 4}, {("kafka-missing", "UserSync-a", 2)}),
    "never published": ([], {"a": 2}, {("kafka-missing", "UserSync-a", 1)}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_presence_and_order(case: str) -> None:
    sequence, versions, expected = CASES[case]
    assert run(sequence, versions) == expected


def test_missing_runs_collapse_and_pending_events_are_not_due() -> None:
    check = TopicCheck()
    record = TopicRecord(0, 0, "a", json.dumps(envelope(stored("a", 1))).encode())
    assert check.check(parse_record(record), stored("a", 1)) == []
    found = list(check.finish([("UserSync-a", 9)], {"UserSync-a": {5, 9}}))
    assert [(v.version, v.detail) for v in found] == [
        (2, "versions 2..4 (3 events) are not on the topic"),
        (6, "versions 6..8 (3 events) are not on the topic"),
    ]


def test_foreign_records() -> None:
    check = TopicCheck()
    event = stored("a", 1)
    unknown = TopicRecord(3, 7, "a", json.dumps(envelope(event)).encode())
    [found] = check.check(parse_record(unknown), None)
    assert (found.rule, found.stream_id, found.version) == ("kafka-foreign", "UserSync-a", 1)
    assert found.detail.startswith("partition 3 offset 7 carries event")
    for value, why in [
        (b"\xff not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (json.dumps({"event_id": "nope"}).encode(), "is not a UUID"),
    ]:
        [found] = check.check(parse_record(TopicRecord(0, 1, "b", value)), None)
        assert (found.rule, found.stream_id) == ("kafka-foreign", "UserSync-b")
        assert why in found.detail


@pytest.mark.parametrize(
    ("changes", "differing"),
    [
        ({}, None),
        ({"occurred_at": "2026-01-01T13:00:00+01:00"}, None),  # the same instant
        ({"data": {"task_id": "t1", "error": "y"}}, "data"),
        ({"version": 2, "user_id": "b"}, "version, user_id"),
        ({"occurred_at": "yesterday"}, "occurred_at"),
    ],
)
def test_mismatch(changes: dict[str, Any], differing: str | None) -> None:
    event = stored("a", 1)
    assert mismatch(envelope(event, **changes), event) == differing
