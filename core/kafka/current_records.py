"""The fast way to read a consumed record: an event of a known type in its current version.

msgspec checks the JSON and builds the event dataclass in C. It is stricter than
envelope_from_json: whatever it refuses (an older schema version, an unknown type, a value
outside a Literal, NaN, ...) is left to that decoder, which has the last word, so a record
reads the same either way. Why: docs/decisions/codecs.md.
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any, get_type_hints

import msgspec

from core.domain.events import EVENT_TYPES, Envelope, envelope_from_fields
from core.domain.upcasting import current_version


def _head_fields() -> list[tuple[str, Any] | tuple[str, Any, Any]]:
    """The Envelope's fields, in order and with their types and defaults; `data` left as raw
    JSON until its event type is known."""
    types = get_type_hints(Envelope)
    head: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for field in fields(Envelope):
        kind = msgspec.Raw if field.name == "data" else types[field.name]
        if field.default is MISSING:
            head.append((field.name, kind))
        else:
            head.append((field.name, kind, field.default))
    return head


# A published envelope: the same field list as Envelope, not a second declaration of it.
_Head = msgspec.defstruct("_Head", _head_fields(), gc=False)
_HEAD = msgspec.json.Decoder(_Head)
_DATA = {
    name: (current_version(name), msgspec.json.Decoder(cls)) for name, cls in EVENT_TYPES.items()
}


def decode_current(value: bytes) -> Envelope | None:
    """The envelope, or None for anything but a well-formed event of a known type in its
    current schema version."""
    try:
        head: Any = _HEAD.decode(value)
        current, data = _DATA.get(head.event_type, (None, None))
        if data is None or head.schema_version != current:
            return None
        fields = msgspec.structs.asdict(head)
        fields["data"] = data.decode(head.data)
    except msgspec.DecodeError:
        return None
    return envelope_from_fields(fields)
