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

from coordinator.domain.events import EVENT_TYPES, SCHEMA_VERSION, Envelope, Event

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


def envelope_model(event_cls: type[Event]) -> type[BaseModel]:
    """A pydantic model of the full envelope whose data is event_cls."""
    hints = get_type_hints(Envelope)
    pinned: dict[str, Any] = {
        "event_type": Literal[event_cls.event_type],
        "schema_version": Literal[SCHEMA_VERSION],
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
    model: type[BaseModel] = create_model(f"{event_cls.event_type}Envelope", **definitions)
    model.__doc__ = f"The envelope of a {event_cls.event_type} event."
    return model


def envelope_union() -> Any:
    """Any envelope: one of the per-type envelopes, chosen by event_type."""
    models = [envelope_model(cls) for cls in EVENT_TYPES.values()]
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
        schema = TypeAdapter(envelope_model(cls)).json_schema()
        description = f"Envelope of {name} (schema_version {SCHEMA_VERSION}): {cls.__doc__}"
        files[f"{name}.schema.json"] = _render(schema, f"{name}Envelope", description)
    union = TypeAdapter(envelope_union()).json_schema()
    description = f"Any sync event envelope (schema_version {SCHEMA_VERSION}), by event_type."
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
