"""JSON Schemas of the published event envelope, generated from the domain's dataclasses."""

from __future__ import annotations

import json
import operator
import sys
from dataclasses import fields
from functools import reduce
from pathlib import Path
from typing import Annotated, Any, Literal, get_type_hints
from uuid import UUID

from pydantic import BaseModel, Field, TypeAdapter, create_model

from core.domain.events import EVENT_TYPES, Envelope
from core.domain.upcasting import PAST_SHAPES, current_version

DIALECT = "https://json-schema.org/draft/2020-12/schema"
ENVELOPE_FILE = "envelope.schema.json"

# Subscribers read these in the published files; every Envelope field needs one, so a
# new envelope field cannot reach the contract undocumented.
ENVELOPE_DOCS: dict[str, str] = {
    "event_id": "Unique id of this event; the same on every redelivery. Dedupe on it.",
    "event_type": "Which event this is; decides the shape of data.",
    "schema_version": "Contract version of the envelope and data; bumped on breaking changes.",
    "stream_id": "The aggregate stream (one per user): UserSync-<user_id>.",
    "user_id": "The user whose sync this is; also the Kafka key.",
    "version": "Position in the stream, 1, 2, 3 ... without gaps; Kafka order per user.",
    "occurred_at": "When the event was recorded (database clock, ISO 8601 with offset).",
    "correlation_id": "The request that led to it (X-Request-ID or a generated id).",
    "causation_id": "The id of the command that caused it.",
    "data": "The event's own fields, shaped by event_type.",
    "traceparent": "W3C trace context of the command that caused it; absent when not traced.",
}

# Narrower than the dataclass annotations where the stored values are narrower:
# event ids are UUIDs in the event table and versions start at 1.
NARROWED: dict[str, Any] = {"event_id": UUID, "version": Annotated[int, Field(ge=1)]}


def envelope_model(event_cls: type, version: int | None = None) -> type[BaseModel]:
    """A pydantic model of the full envelope whose data is event_cls (of this version)."""
    hints = get_type_hints(Envelope)
    event_type: str = event_cls.event_type  # type: ignore[attr-defined]
    version = version or current_version(event_type)
    pinned: dict[str, Any] = {
        "event_type": Literal[event_type],
        "schema_version": Literal[version],
        "data": event_cls,
    }
    optional = {f.name for f in fields(Envelope) if f.default is None}
    definitions: dict[str, Any] = {
        name: (
            Annotated[
                pinned.get(name, NARROWED.get(name, hint)), Field(description=ENVELOPE_DOCS[name])
            ],
            None if name in optional else ...,
        )
        for name, hint in hints.items()
    }
    suffix = "" if version == current_version(event_type) else f"V{version}"
    model: type[BaseModel] = create_model(f"{event_type}{suffix}Envelope", **definitions)
    model.__doc__ = f"The envelope of a {event_type} event (schema_version {version})."
    return model


def _versions_of(event_type: str) -> Any:
    """Every published version of one type's envelope, chosen by schema_version."""
    past = [
        envelope_model(cls, version)
        for (name, version), cls in sorted(PAST_SHAPES.items())
        if name == event_type
    ]
    current = envelope_model(EVENT_TYPES[event_type])
    if not past:
        return current
    return Annotated[reduce(operator.or_, [*past, current]), Field(discriminator="schema_version")]


def envelope_union() -> Any:
    """Any envelope of any published version: chosen by event_type, then schema_version."""
    models = [_versions_of(name) for name in EVENT_TYPES]
    # Discriminated by event_type, not a plain union of data shapes: SyncReused's
    # data also satisfies SyncStarted's, so only event_type tells them apart.
    return Annotated[reduce(operator.or_, models), Field(discriminator="event_type")]


def _render(schema: dict[str, Any], title: str, description: str) -> str:
    document = {"$schema": DIALECT, **schema, "title": title, "description": description}
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_schemas() -> dict[str, str]:
    """File name -> schema text, deterministic byte for byte."""
    files: dict[str, str] = {}
    for name, cls in EVENT_TYPES.items():
        version = current_version(name)
        schema = TypeAdapter(envelope_model(cls)).json_schema()
        description = f"Envelope of {name} (schema_version {version}): {cls.__doc__}"
        files[f"{name}.schema.json"] = _render(schema, f"{name}Envelope", description)
    # Past versions stay published: events written with them stay on the topic and in the store.
    for (name, version), cls in PAST_SHAPES.items():
        schema = TypeAdapter(envelope_model(cls, version)).json_schema()
        description = f"Envelope of {name} as written with schema_version {version}: {cls.__doc__}"
        files[f"{name}.v{version}.schema.json"] = _render(
            schema, f"{name}V{version}Envelope", description
        )
    union = TypeAdapter(envelope_union()).json_schema()
    description = "Any sync event envelope of any published version, by event_type."
    files[ENVELOPE_FILE] = _render(union, "SyncEventEnvelope", description)
    return files


def export_schemas(out_dir: Path, check: bool) -> int:
    """Write the schemas into out_dir, or with check only report stale ones (exit status)."""
    wanted = render_schemas()
    present = {p.name for p in out_dir.glob("*.schema.json")} if out_dir.is_dir() else set()
    missing = sorted(name for name in wanted if name not in present)
    stale = sorted(
        name
        for name in present
        if name not in wanted or (out_dir / name).read_text(encoding="utf-8") != wanted[name]
    )
    if check:
        for name in missing:
            print(f"missing: {out_dir / name}", file=sys.stderr)
        for name in stale:
            print(f"stale: {out_dir / name}", file=sys.stderr)
        if missing or stale:
            print("run `syncctl schema` and commit the result", file=sys.stderr)
            return 1
        print(f"{len(wanted)} schemas in {out_dir} are current")
        return 0
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in stale:
        if name not in wanted:
            # A schema for an event type that no longer exists would mislead subscribers.
            (out_dir / name).unlink()
    for name, text in wanted.items():
        (out_dir / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(wanted)} schemas to {out_dir}")
    return 0
