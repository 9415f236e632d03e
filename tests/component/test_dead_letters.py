"""Pure parts of dead-lettering: which refusals are for good, the size check, the findings."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from io import StringIO
from typing import Any

import pytest
from kafka import errors

from coordinator import cli
from coordinator.adapters.kafka.publisher import Message, encode, refused_for_good, too_large
from coordinator.replay.kafka_check import TopicCheck
from coordinator.replay.output import Tally
from coordinator.replay.records import (
    DeadLetterEntry,
    OutboxEntry,
    StoredEvent,
    StreamRow,
    Violation,
)
from coordinator.replay.verify import verify_store
from core.settings import Settings

AT = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("error", "for_good"),
    [
        (errors.MessageSizeTooLargeError("too big"), True),
        (errors.RecordListTooLargeError(), True),
        (errors.InvalidRecordError("bad header"), True),
        (errors.CorruptRecordError(), True),
        (errors.InvalidTimestampError(), True),
        # The broker or the client, not the record: the batch waits and is retried.
        (errors.KafkaTimeoutError(), False),
        (errors.KafkaConnectionError(), False),
        (errors.NotEnoughReplicasError(), False),
        (errors.TopicAuthorizationFailedError(), False),
        (errors.OutOfOrderSequenceNumberError(), False),
        (errors.KafkaError("part of a batch which had one more more invalid records"), False),
    ],
)
def test_only_refusals_of_the_record_itself_are_for_good(error: Exception, for_good: bool) -> None:
    assert refused_for_good(error) is for_good


def test_a_record_over_the_limit_is_refused_with_both_sizes() -> None:
    assert too_large(1_000_000, 1_000_000) is None
    reason = too_large(1_000_001, 1_000_000)
    assert reason is not None
    assert "1,000,001 bytes" in reason and "1,000,000 bytes" in reason


def test_the_checked_size_covers_key_value_headers_and_framing() -> None:
    def size(value: dict[str, Any], user: str = "u", event_id: str = "e") -> int:
        return encode(Message(user, value, {"event_id": event_id})).size

    small = size({"a": "x"})
    # Each byte more counts, plus a few for the longer varint lengths.
    assert small + 999 <= size({"a": "x" * 1000}) <= small + 999 + 4
    assert small + 10 <= size({"a": "x"}, user="u" * 11) <= small + 10 + 4
    assert small + 5 <= size({"a": "x"}, event_id="e" * 6) <= small + 5 + 4
    assert small > len('{"a":"x"}') + 1 + len("event_id") + 1  # plus the batch's own header


class Dead:
    """A dead letter as the replay tool reads it."""

    def __init__(self, stream_id: str, version: int) -> None:
        self.event_id = f"00000000-0000-0000-0000-{version:012d}"
        self.stream_id = stream_id
        self.version: int | None = version
        self.event_type = "SyncProgressed"
        self.reason = "MessageSizeTooLargeError: too big"
        self.dead_at = AT


def test_a_dead_letter_absent_from_the_topic_is_reported_as_such_not_as_missing() -> None:
    dead: dict[str, dict[int, DeadLetterEntry]] = {"UserSync-a": {2: Dead("UserSync-a", 2)}}
    found = list(TopicCheck().finish([("UserSync-a", 4)], {}, dead))
    assert [(v.rule, v.version) for v in found] == [
        ("dead-letter", 2),
        ("kafka-missing", 1),
        ("kafka-missing", 3),
    ]
    assert "versions 3..4" in found[2].detail


class History:
    """An empty store but for dead letters."""

    def __init__(self, dead: list[DeadLetterEntry]) -> None:
        self._dead = dead

    def expected_events(self) -> int:
        return 0

    def streams_and_events(self) -> Iterator[StreamRow | StoredEvent]:
        return iter([])

    def duplicate_event_ids(self) -> Iterator[tuple[str, list[tuple[str, int]]]]:
        return iter([])

    def stale_outbox(self, max_age_seconds: float) -> Iterator[OutboxEntry]:
        return iter([])

    def dead_letters(self) -> Iterator[DeadLetterEntry]:
        return iter(self._dead)


def test_verify_reports_each_dead_letter_with_its_reason_and_repair() -> None:
    found: list[Violation] = []
    verify_store(History([Dead("UserSync-b", 7)]), found.append, Tally(), outbox_max_age=300)
    [violation] = found
    assert (violation.rule, violation.stream_id, violation.version) == (
        "dead-letter",
        "UserSync-b",
        7,
    )
    assert "MessageSizeTooLargeError: too big" in violation.detail
    assert "2026-01-01T09:00:00.000Z" in violation.detail
    assert "syncctl deadletters republish --event-id 00000000-0000-0000-0000-000000000007" in (
        violation.detail
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["republish"],
        ["republish", "--all", "--event-id", "00000000-0000-0000-0000-000000000001"],
        ["republish", "--event-id", "not-a-uuid"],
        ["list", "--format", "yaml"],
        ["purge"],
    ],
)
def test_bad_arguments_exit_2_before_touching_the_database(argv: list[str]) -> None:
    # No database is configured: reaching it would exit with SystemExit instead of 2.
    assert (
        cli.run(Settings(database_url=None), ["deadletters", *argv], out=StringIO(), err=StringIO())
        == 2
    )
