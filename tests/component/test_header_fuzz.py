"""Fuzzed headers: whatever a message holds, its fields are read into storable text and no
message of a batch is lost to its content (hypothesis over real-world header shapes)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers.imap.fetched import RAW, readable
from consumers.imap.header_text import MAX_HEADER_TEXT, header_date, header_text
from tests.support.broken_mail import broken_samples
from tests.support.mail_shapes import DATES, HEADER_VALUES, header_blocks

FUZZ = settings(max_examples=200, deadline=None, database=None)


def storable(text: str | None) -> bool:
    """What PostgreSQL text holds: no NUL, no lone surrogate, and our bound."""
    if text is None:
        return True
    text.encode("utf-8")  # raises on a lone surrogate
    return "\x00" not in text and len(text) <= MAX_HEADER_TEXT


@FUZZ
@given(HEADER_VALUES)
def test_any_header_value_reads_as_storable_text(value: bytes) -> None:
    assert storable(header_text(value))
    assert storable(header_text(value.decode("latin-1")))


@FUZZ
@given(DATES)
def test_any_date_header_is_a_loadable_utc_moment_or_none(value: bytes) -> None:
    moment = header_date(value)
    assert moment is None or (moment.utcoffset() is not None and 1 <= moment.year <= 9999)


def answer(raw: bytes, size: int | None = None) -> dict[bytes, Any]:
    return {
        b"FLAGS": (b"\\Seen",),
        b"INTERNALDATE": datetime(2026, 1, 1, tzinfo=UTC),
        b"RFC822.SIZE": len(raw) if size is None else size,
        RAW: raw,
    }


@settings(FUZZ, max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(header_blocks(), min_size=1, max_size=6))
def test_no_message_content_stops_a_batch(raws: list[bytes]) -> None:
    uids = list(range(1, len(raws) + 1))
    messages, skipped = readable(uids, {u: answer(r) for u, r in enumerate(raws, 1)}, 1 << 20)
    assert skipped == [] and [m.uid for m in messages] == uids
    for m in messages:
        assert all(storable(t) for t in (m.message_id, m.subject, m.sender, m.recipients))


def test_every_broken_sample_is_read() -> None:
    samples = list(broken_samples().values())
    uids = list(range(1, len(samples) + 1))
    messages, skipped = readable(uids, {u: answer(r) for u, r in enumerate(samples, 1)}, 1 << 20)
    assert skipped == [] and len(messages) == len(samples)


def test_a_bad_encoded_word_is_shown_as_written_beside_good_ones() -> None:
    said = header_text(b"=?utf-8?Q?ok?= =?UTF-8?B?!!notbase64?= =?x-nope?Q?caf=C3=A9?=")
    assert said == "ok=?UTF-8?B?!!notbase64?=café"


def test_an_answer_that_cannot_be_read_is_listed_with_the_reason() -> None:
    broken = {1: answer(b"Subject: a\r\n\r\n"), 2: {b"RFC822.SIZE": "many"}, 3: answer(b"")}
    messages, skipped = readable([1, 2, 3], broken, 1 << 20)
    assert [m.uid for m in messages] == [1, 3]
    assert [s.uid for s in skipped] == [2] and "could not be read" in skipped[0].reason
