"""The projector's status notices: every user named once, each payload under NOTIFY's limit."""

from __future__ import annotations

from projections.status_notices import MAX_PAYLOAD_BYTES, decode, encode


def test_many_users_are_cut_into_payloads_under_the_limit() -> None:
    users = [f"user-{n:05d}-" + "é" * 40 for n in range(3000)]  # non-ASCII: bytes, not chars
    payloads = encode(users)
    assert len(payloads) > 1
    assert all(len(p.encode()) <= MAX_PAYLOAD_BYTES for p in payloads)
    assert [u for p in payloads for u in decode(p)] == users


def test_no_users_no_payload() -> None:
    assert encode([]) == []


def test_ids_with_quotes_and_backslashes_round_trip() -> None:
    users = ['a"b', "c\\d", "e,f", "[g]"]
    assert decode(encode(users)[0]) == users


def test_a_foreign_payload_names_nobody() -> None:
    assert decode("") == []
    assert decode("not json") == []
    assert decode('{"user": "x"}') == []
    assert decode('["x", 3, null]') == ["x"]
