"""The published JSON Schemas are current and describe the envelopes the domain produces."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from jsonschema import Draft202012Validator
from pydantic import TypeAdapter, ValidationError

from coordinator.schema_export import ENVELOPE_FILE, envelope_model, envelope_union, export_schemas
from core.domain.commands import (
    CancelSync,
    Command,
    CompleteSync,
    FailSync,
    ReportProgress,
    RequestMeta,
    StartRequested,
)
from core.domain.events import EVENT_TYPES, Event, SyncStarted, envelope_from_json, stamp
from core.domain.upcasting import PAST_SHAPES
from core.domain.user_sync import UserSyncState, decide, fold

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"
T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
LEASE = timedelta(minutes=30)
META = RequestMeta("req-1")
ANNOTATIONS = {"$schema", "$defs", "title", "description", "default", "discriminator"}


def one_event_of_each_type() -> dict[str, dict[str, Any]]:
    """Envelopes as published: decide() on a fake clock, stamp(), to_json(), JSON text."""
    script: list[tuple[Command, datetime]] = [
        (StartRequested("u1", False, META), T0),
        (StartRequested("u1", True, META), T0 + timedelta(minutes=1)),
        (ReportProgress("u1", "t1", 40.0, {"messages": 80}, META), T0 + timedelta(minutes=2)),
        (CompleteSync("u1", "t1", {"messages": 200}, META), T0 + timedelta(minutes=3)),
        (StartRequested("u1", False, META), T0 + timedelta(minutes=4)),
        (StartRequested("u1", False, META), T0 + timedelta(hours=2)),  # expired, replaced
        (FailSync("u1", "t3", "imap timeout", META), T0 + timedelta(hours=2, minutes=1)),
        (StartRequested("u1", False, META), T0 + timedelta(hours=2, minutes=2)),
        (StartRequested("u1", False, META, "new_mail"), T0 + timedelta(hours=2, minutes=2)),
        (CancelSync("u1", "t4", META), T0 + timedelta(hours=2, minutes=3)),
    ]
    ids = iter(["t1", "t2", "t3", "t4"])
    state, version, history = UserSyncState(), 0, []
    for command, now in script:
        events: list[Event] = decide(state, command, now, LEASE, lambda: next(ids))
        history += stamp(
            events,
            stream_id="UserSync-u1",
            user_id="u1",
            after_version=version,
            now=now,
            correlation_id="req-1",
            causation_id=META.command_id,
        )
        state, version = fold(events, state), version + len(events)
    return {e.event_type: json.loads(json.dumps(e.to_json())) for e in history}


ENVELOPES = one_event_of_each_type()
SCHEMAS_BY_NAME = sorted(p.name for p in SCHEMAS.glob("*.schema.json"))


def violations(
    schema: dict[str, Any], value: Any, root: dict[str, Any], at: str = "$"
) -> list[str]:
    """Where value breaks schema, for the keywords the generated schemas use."""
    unknown = set(schema) - ANNOTATIONS - set(CHECKS)
    assert not unknown, f"extend the checker for {unknown}"
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return violations(target, value, root, at)
    return [
        f"{at}: {error}"
        for key, check in CHECKS.items()
        if key in schema
        for error in check(schema[key], value, root, at)
    ]


def _type(expected: str, value: Any, root: dict[str, Any], at: str) -> list[str]:
    if expected == "boolean":
        return [] if isinstance(value, bool) else [f"not boolean: {value!r}"]
    kinds: dict[str, type | tuple[type, ...]] = {
        "object": dict,
        "string": str,
        "integer": int,
        "number": (int, float),
        "null": type(None),
    }
    ok = isinstance(value, kinds[expected]) and not isinstance(value, bool)
    return [] if ok else [f"not {expected}: {value!r}"]


def _format(fmt: str, value: Any, root: dict[str, Any], at: str) -> list[str]:
    parsers: dict[str, Callable[[Any], object]] = {
        "date-time": datetime.fromisoformat,
        "uuid": UUID,
    }
    parse = parsers[fmt]
    try:
        parse(value)
        return []
    except (TypeError, ValueError):
        return [f"not {fmt}: {value!r}"]


def _properties(props: dict[str, Any], value: Any, root: dict[str, Any], at: str) -> list[str]:
    return [
        e
        for k, s in props.items()
        if k in value
        for e in violations(s, value[k], root, f"{at}.{k}")
    ]


def _one_of(options: list[Any], value: Any, root: dict[str, Any], at: str) -> list[str]:
    matching = sum(not violations(o, value, root, at) for o in options)
    return [] if matching == 1 else [f"matches {matching} of oneOf"]


CHECKS = {
    "$ref": lambda s, v, r, a: [],
    "type": _type,
    "format": _format,
    "const": lambda c, v, r, a: [] if v == c else [f"{v!r} != {c!r}"],
    "enum": lambda e, v, r, a: [] if v in e else [f"{v!r} not in {e}"],
    "minimum": lambda m, v, r, a: [] if v >= m else [f"{v} < {m}"],
    "required": lambda req, v, r, a: [f"missing {k}" for k in req if k not in v],
    "properties": _properties,
    "additionalProperties": lambda allowed, v, r, a: [] if allowed is True else ["closed object"],
    "anyOf": lambda opts, v, r, a: (
        [] if any(not violations(o, v, r, a) for o in opts) else ["anyOf"]
    ),
    "oneOf": _one_of,
}


def load(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS / name).read_text())
    return schema


def without(body: dict[str, Any], path: str) -> dict[str, Any]:
    copy: dict[str, Any] = json.loads(json.dumps(body))
    *parents, leaf = path.split(".")
    target = copy
    for part in parents:
        target = target[part]
    del target[leaf]
    return copy


def test_checked_in_schemas_are_current() -> None:
    assert export_schemas(SCHEMAS, check=True) == 0, "run `syncctl schema` and commit"


def test_check_names_stale_missing_and_obsolete_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert export_schemas(tmp_path, check=False) == 0
    (tmp_path / "SyncFailed.schema.json").write_text("{}\n")
    (tmp_path / "SyncReused.schema.json").unlink()
    (tmp_path / "SyncRenamed.schema.json").write_text("{}\n")
    capsys.readouterr()
    assert export_schemas(tmp_path, check=True) == 1
    err = capsys.readouterr().err
    assert "stale" in err and "SyncFailed.schema.json" in err and "SyncRenamed" in err
    assert "missing" in err and "SyncReused.schema.json" in err
    assert export_schemas(tmp_path, check=False) == 0
    assert export_schemas(tmp_path, check=True) == 0
    assert not (tmp_path / "SyncRenamed.schema.json").exists()


def test_every_event_type_has_a_schema_and_a_sample() -> None:
    assert set(ENVELOPES) == set(EVENT_TYPES)
    assert {p.name for p in SCHEMAS.glob("*.schema.json")} == {
        *(f"{t}.schema.json" for t in EVENT_TYPES),
        *(f"{t}.v{v}.schema.json" for t, v in PAST_SHAPES),
        ENVELOPE_FILE,
    }


def started_v1() -> dict[str, Any]:
    """A SyncStarted as version 1 wrote it: no reason, no client."""
    body = json.loads(json.dumps(ENVELOPES["SyncStarted"]))
    del body["data"]["reason"], body["data"]["requested_by"]
    return {**body, "schema_version": 1}


def test_both_versions_of_sync_started_validate_against_their_own_schemas() -> None:
    v1, v2 = started_v1(), ENVELOPES["SyncStarted"]
    assert v2["schema_version"] == 2 and v2["data"]["reason"] == "first_click"
    validate = {name: Draft202012Validator(load(name)) for name in SCHEMAS_BY_NAME}
    assert validate["SyncStarted.v1.schema.json"].is_valid(v1)
    assert validate["SyncStarted.schema.json"].is_valid(v2)
    assert not validate["SyncStarted.schema.json"].is_valid(v1)  # v2 requires reason
    assert validate[ENVELOPE_FILE].is_valid(v1) and validate[ENVELOPE_FILE].is_valid(v2)
    assert not validate[ENVELOPE_FILE].is_valid({**v1, "schema_version": 3})


def test_version_1_is_upcast_on_read_and_version_2_read_as_written() -> None:
    v1 = started_v1()
    v1["data"]["replaces_task_id"] = "t0"
    upcast = envelope_from_json(v1)
    assert upcast.schema_version == 1  # the envelope says how it was written
    assert isinstance(upcast.data, SyncStarted)
    assert (upcast.data.reason, upcast.data.requested_by) == ("replaced_expired", None)
    del v1["data"]["replaces_task_id"]
    assert envelope_from_json(v1).data.reason == "first_click"  # type: ignore[union-attr]
    assert envelope_from_json(ENVELOPES["SyncStarted"]).to_json() == ENVELOPES["SyncStarted"]


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_schema_accepts_a_real_envelope(event_type: str) -> None:
    body = ENVELOPES[event_type]
    for schema in (load(f"{event_type}.schema.json"), load(ENVELOPE_FILE)):
        assert violations(schema, body, schema) == []
    TypeAdapter(envelope_model(EVENT_TYPES[event_type])).validate_python(body)
    TypeAdapter(envelope_union()).validate_python(body)
    assert envelope_from_json(body).to_json() == body


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
@pytest.mark.parametrize("field", ["user_id", "version", "data.task_id"])
def test_schema_rejects_an_envelope_missing_a_required_field(event_type: str, field: str) -> None:
    broken = without(ENVELOPES[event_type], field)
    for schema in (load(f"{event_type}.schema.json"), load(ENVELOPE_FILE)):
        assert violations(schema, broken, schema) != []
    with pytest.raises(ValidationError):
        TypeAdapter(envelope_model(EVENT_TYPES[event_type])).validate_python(broken)


def test_envelope_schema_matches_data_to_event_type() -> None:
    # SyncReused's data has every field SyncStarted requires; only event_type decides.
    mislabelled = {**ENVELOPES["SyncStarted"], "event_type": "SyncReused"}
    envelope = load(ENVELOPE_FILE)
    assert violations(envelope, ENVELOPES["SyncReused"], envelope) == []
    assert violations(envelope, mislabelled, envelope) != []
    with pytest.raises(ValidationError):
        TypeAdapter(envelope_union()).validate_python(mislabelled)
