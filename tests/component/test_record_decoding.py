"""A consumed record reads as envelope_from_json reads it, whichever way it is decoded."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from core.domain.events import EVENT_TYPES, envelope_from_json
from core.kafka.event_source import decode
from tests.component.test_schemas import ENVELOPES, started_v1


def record(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def changed(event_type: str, path: str, value: Any) -> dict[str, Any]:
    body = copy.deepcopy(ENVELOPES[event_type])
    *parents, last = path.split(".")
    target = body
    for key in parents:
        target = target[key]
    target[last] = value
    return body


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_event_type_reads_as_the_general_decoder_reads_it(event_type: str) -> None:
    body = ENVELOPES[event_type]
    envelope = decode(record(body), 0, 0)
    assert envelope == envelope_from_json(copy.deepcopy(body))
    assert envelope is not None and type(envelope.data) is EVENT_TYPES[event_type]
    assert envelope.to_json() == body


@pytest.mark.parametrize(
    "body",
    [
        started_v1(),  # an older schema version, upcast
        changed("SyncStarted", "data.sync_type", "weekly"),  # outside the Literal
        # An integer where a float is declared reads as that float: the same value (our
        # producers always write floats there).
        changed("SyncProgressed", "data.percent", 40),
        changed("SyncProgressed", "version", 3.0),
        changed("SyncCompleted", "data.stats", {"huge": 2**70}),
        changed("SyncReused", "schema_version", 7),  # newer than this code knows
        {**ENVELOPES["SyncFailed"], "extra": {"ignored": True}},
    ],
    ids=["v1", "literal", "int-percent", "float-version", "bigint", "newer", "extra-field"],
)
def test_what_the_fast_path_refuses_still_reads_as_before(body: dict[str, Any]) -> None:
    envelope = decode(record(body), 0, 0)
    assert envelope is not None
    assert envelope == envelope_from_json(copy.deepcopy(body))
    assert envelope.data.__dict__ == envelope_from_json(copy.deepcopy(body)).data.__dict__


@pytest.mark.parametrize(
    "raw",
    [
        record(changed("SyncExpired", "event_type", "SyncVanished")),
        record({k: v for k, v in ENVELOPES["SyncCompleted"].items() if k != "user_id"}),
        record(changed("SyncFailed", "data", ["not", "an", "object"])),
        b"{not json",
    ],
    ids=["unknown-type", "no-user", "data-not-object", "not-json"],
)
def test_an_unreadable_record_is_skipped(raw: bytes) -> None:
    assert decode(raw, 0, 0) is None
