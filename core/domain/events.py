"""Events of the UserSync stream and the envelope downstream consumers receive."""

from __future__ import annotations

from dataclasses import KW_ONLY, MISSING, dataclass, fields
from datetime import datetime
from typing import Any, ClassVar, Literal
from uuid import uuid4

from core.domain.frozen import frozen_from_fields
from core.domain.upcasting import current_version, upcast

SyncType = Literal["full", "incremental"]
# first_click: a click found no live task; replaced_expired: a click found the live task's
# lease run out and replaced it; queued_full_sync: the coordinator started a full sync that
# waited behind the task that just ended; new_mail: a watcher's new-mail notice found no live
# task; queued_follow_up: the coordinator started the incremental sync a notice queued behind
# the task that just ended.
StartReason = Literal[
    "first_click", "replaced_expired", "queued_full_sync", "new_mail", "queued_follow_up"
]
# What asked for a start: a person's click, or a watcher that saw the mailbox change.
Trigger = Literal["click", "new_mail"]


@dataclass(frozen=True)
class SyncStarted:
    """A new sync task was started; it is live until lease_expires_at."""

    event_type: ClassVar[str] = "SyncStarted"
    task_id: str
    sync_type: SyncType
    started_at: datetime
    lease_expires_at: datetime
    replaces_task_id: str | None = None
    _: KW_ONLY
    # Since schema_version 2 (events of version 1 are upcast on read, see upcasting.py).
    reason: StartReason
    requested_by: str | None  # the client that asked (its User-Agent); None if unknown


@dataclass(frozen=True)
class SyncReused:
    """A start request joined the live task instead of starting another."""

    event_type: ClassVar[str] = "SyncReused"
    task_id: str
    sync_type: SyncType
    requested_sync_type: SyncType
    started_at: datetime
    lease_expires_at: datetime


@dataclass(frozen=True)
class SyncExpired:
    """The task's lease ran out before it finished; it is dead."""

    event_type: ClassVar[str] = "SyncExpired"
    task_id: str
    lease_expired_at: datetime
    reason: str = "lease_ran_out"
    detected_by: Literal["start", "reaper"] = "start"


@dataclass(frozen=True)
class SyncProgressed:
    """The worker reported progress; the lease now runs until lease_expires_at."""

    event_type: ClassVar[str] = "SyncProgressed"
    task_id: str
    percent: float
    stats: dict[str, Any]
    lease_expires_at: datetime


@dataclass(frozen=True)
class SyncCompleted:
    """The task finished its work."""

    event_type: ClassVar[str] = "SyncCompleted"
    task_id: str
    stats: dict[str, Any]
    finished_at: datetime


@dataclass(frozen=True)
class SyncFailed:
    """The task gave up with an error."""

    event_type: ClassVar[str] = "SyncFailed"
    task_id: str
    error: str
    finished_at: datetime


@dataclass(frozen=True)
class FullSyncQueued:
    """A full sync was asked for while an incremental one runs; it starts when that one ends."""

    event_type: ClassVar[str] = "FullSyncQueued"
    task_id: str  # the running incremental task it waits behind
    requested_by: str | None = None  # the client that asked (its User-Agent)


@dataclass(frozen=True)
class FollowUpSyncQueued:
    """New mail was noticed while a sync runs; an incremental sync starts when that one ends,
    so mail that arrived after the running sync passed its folder is not missed."""

    event_type: ClassVar[str] = "FollowUpSyncQueued"
    task_id: str  # the running task it waits behind
    trigger: Trigger = "new_mail"


@dataclass(frozen=True)
class CancelRequested:
    """The task's owner asked to stop the task (SyncCancelled follows in the same command)."""

    event_type: ClassVar[str] = "CancelRequested"
    task_id: str
    requested_by: str | None = None  # the client that asked (its User-Agent)


@dataclass(frozen=True)
class SyncCancelled:
    """The task was stopped at its owner's request; its worker must stop."""

    event_type: ClassVar[str] = "SyncCancelled"
    task_id: str
    finished_at: datetime
    dropped_full_sync: bool = False  # a queued full sync was dropped with it
    dropped_follow_up: bool = False  # a queued follow-up sync was dropped with it


Event = (
    SyncStarted
    | SyncReused
    | SyncExpired
    | SyncProgressed
    | SyncCompleted
    | SyncFailed
    | FullSyncQueued
    | FollowUpSyncQueued
    | CancelRequested
    | SyncCancelled
)
EVENT_TYPES: dict[str, type[Event]] = {
    cls.event_type: cls
    for cls in (
        SyncStarted,
        SyncReused,
        SyncExpired,
        SyncProgressed,
        SyncCompleted,
        SyncFailed,
        FullSyncQueued,
        FollowUpSyncQueued,
        CancelRequested,
        SyncCancelled,
    )
}


@dataclass(frozen=True)
class Envelope:
    """One stored event as it travels: identity, position, causality and data."""

    event_id: str
    event_type: str
    schema_version: int
    stream_id: str
    user_id: str
    version: int
    occurred_at: datetime
    correlation_id: str
    causation_id: str
    data: Event
    traceparent: str | None = None  # W3C trace context of the command; absent when untraced

    def to_json(self) -> dict[str, Any]:
        """The envelope as JSON-ready values (times in ISO 8601); no traceparent when None."""
        body = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "data"}
        body["occurred_at"] = self.occurred_at.isoformat()
        body["data"] = data_to_json(self.data)
        if self.traceparent is None:
            del body["traceparent"]
        return body


# The envelope's field list, taken from the dataclass by every decoder (in field order).
ENVELOPE_REQUIRED = tuple(f.name for f in fields(Envelope) if f.default is MISSING)
ENVELOPE_OPTIONAL = tuple((f.name, f.default) for f in fields(Envelope) if f.default is not MISSING)


def data_to_json(event: Event) -> dict[str, Any]:
    """An event's data as JSON-ready values (shallow: asdict's deep copy costs on the hot path)."""
    values = ((f.name, getattr(event, f.name)) for f in fields(event))
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in values}


@dataclass(frozen=True)
class _Shape:
    """How to build one event type from its JSON data, computed once per type:
    dataclasses.fields() per event was a third of the projector's decoding time."""

    cls: type[Event]
    current: int  # the schema_version written now; older data is upcast first
    required: tuple[str, ...]
    optional: tuple[tuple[str, Any], ...]  # (name, default)
    times: tuple[str, ...]


def _shape(cls: type[Event]) -> _Shape:
    every = fields(cls)
    if any(f.default_factory is not MISSING for f in every):
        raise TypeError(f"{cls.__name__}: the decoder does not build default factories")
    return _Shape(
        cls=cls,
        current=current_version(cls.event_type),
        required=tuple(f.name for f in every if f.default is MISSING),
        optional=tuple((f.name, f.default) for f in every if f.default is not MISSING),
        times=tuple(f.name for f in every if f.name.endswith("_at")),
    )


_SHAPES = {name: _shape(cls) for name, cls in EVENT_TYPES.items()}


def data_from_json(event_type: str, data: dict[str, Any], schema_version: int) -> Event:
    """Rebuild an event from its stored JSON data, upcast from the version it was written in.
    KeyError for an unknown type or a missing field, TypeError for data that is no object."""
    shape = _SHAPES[event_type]
    if not isinstance(data, dict):
        raise TypeError(f"{event_type} data is not an object")
    if schema_version < shape.current:
        data = upcast(event_type, schema_version, data)
    values = {name: data[name] for name in shape.required}
    for name, default in shape.optional:
        values[name] = data.get(name, default)
    for name in shape.times:
        value = values[name]
        if isinstance(value, str):
            values[name] = datetime.fromisoformat(value)
    return frozen_from_fields(shape.cls, values)


def envelope_from_json(body: dict[str, Any]) -> Envelope:
    """Parse an envelope as published on Kafka or stored in the event table."""
    values = {name: body[name] for name in ENVELOPE_REQUIRED}
    values.update((name, body.get(name, default)) for name, default in ENVELOPE_OPTIONAL)
    values["occurred_at"] = datetime.fromisoformat(values["occurred_at"])
    values["data"] = data_from_json(values["event_type"], values["data"], values["schema_version"])
    return envelope_from_fields(values)


def envelope_from_fields(values: dict[str, Any]) -> Envelope:
    """An envelope from the value of every field, each already of its type (a decoder's
    last step), in the fields' order."""
    return frozen_from_fields(Envelope, values)


def stamp(
    events: list[Event] | tuple[Event, ...],
    *,
    stream_id: str,
    user_id: str,
    after_version: int,
    now: datetime,
    correlation_id: str,
    causation_id: str,
    traceparent: str | None = None,
) -> list[Envelope]:
    """Wrap new events in envelopes numbered from after_version + 1."""
    return [
        Envelope(
            event_id=str(uuid4()),
            event_type=event.event_type,
            schema_version=current_version(event.event_type),
            stream_id=stream_id,
            user_id=user_id,
            version=after_version + offset,
            occurred_at=now,
            correlation_id=correlation_id,
            causation_id=causation_id,
            data=event,
            traceparent=traceparent,
        )
        for offset, event in enumerate(events, start=1)
    ]


def stored_metadata(envelope: Envelope) -> dict[str, Any]:
    """The envelope fields the events table keeps in its metadata column."""
    metadata = {
        "user_id": envelope.user_id,
        "correlation_id": envelope.correlation_id,
        "causation_id": envelope.causation_id,
    }
    if envelope.traceparent is not None:
        metadata["traceparent"] = envelope.traceparent
    return metadata


def envelope_from_stored(
    *,
    event_id: object,
    event_type: str,
    schema_version: int,
    stream_id: str,
    version: int,
    occurred_at: datetime,
    data: dict[str, Any],
    metadata: dict[str, Any],
    event: Event | None = None,
) -> Envelope:
    """Rebuild an envelope from an events-table row (identity in columns, the rest in metadata);
    `event` is the row's data when the caller has decoded it already."""
    return Envelope(
        event_id=str(event_id),
        event_type=event_type,
        schema_version=schema_version,
        stream_id=stream_id,
        user_id=metadata["user_id"],
        version=version,
        occurred_at=occurred_at,
        correlation_id=metadata["correlation_id"],
        causation_id=metadata["causation_id"],
        data=event or data_from_json(event_type, data, schema_version),
        traceparent=metadata.get("traceparent"),
    )
