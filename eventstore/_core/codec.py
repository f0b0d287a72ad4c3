"""Turning domain events into stored fields and back. JSON only: no pickle, no eval.

Aggregate stream entry fields (short names: they are stored once per event):
``t`` event type, ``s`` schema version, ``i`` event id, ``ts`` writer time (ms),
``p`` partition position, ``d`` payload JSON, and when set ``m`` user metadata JSON,
``c`` correlation id, ``z`` causation id.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from aggregates import DomainEvent, UpcastError, event_class, upcast
from eventstore._core.errors import InvalidEvent, StoredDataError, UnknownEventType
from eventstore._core.records import NewEvent, RecordedEvent

__all__ = [
    "decode_event",
    "decode_fields",
    "encode_batch",
    "encode_event",
    "now_ms",
    "version_of_id",
]

Fields = Mapping[bytes, bytes]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def encode_event(
    event: DomainEvent,
    *,
    event_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    timestamp_ms: int | None = None,
) -> NewEvent:
    """Encode one domain event for an append (serialization errors propagate)."""
    if not isinstance(event, DomainEvent):
        raise TypeError(f"expected a DomainEvent, got {type(event).__name__}")
    return NewEvent(
        event_id=event_id or str(uuid.uuid4()),
        event_type=event.event_type,
        schema_version=event.schema_version,
        timestamp_ms=timestamp_ms if timestamp_ms is not None else now_ms(),
        data=event.model_dump_json(),
        metadata=json.dumps(dict(metadata), separators=(",", ":")) if metadata else "",
        correlation_id=correlation_id or "",
        causation_id=causation_id or "",
    )


def encode_batch(
    stream: str,
    events: Sequence[DomainEvent],
    *,
    event_ids: Sequence[str] | None = None,
    timestamps_ms: Sequence[int] | None = None,
    metadata: Mapping[str, Any] | None = None,
    correlation_id: str | None = None,
    causation_id: str | None = None,
) -> list[NewEvent]:
    """Encode a batch; the first event that cannot be encoded raises ``InvalidEvent``."""
    for name, given in (("event_ids", event_ids), ("timestamps_ms", timestamps_ms)):
        if given is not None and len(given) != len(events):
            raise InvalidEvent(stream, 0, name, f"{len(given)} given for {len(events)} events")
    encoded = []
    for index, event in enumerate(events, start=1):
        try:
            encoded.append(
                encode_event(
                    event,
                    event_id=event_ids[index - 1] if event_ids is not None else None,
                    timestamp_ms=timestamps_ms[index - 1] if timestamps_ms is not None else None,
                    metadata=metadata,
                    correlation_id=correlation_id,
                    causation_id=causation_id,
                )
            )
        except (TypeError, ValueError) as exc:
            name = getattr(event, "event_type", type(event).__name__)
            raise InvalidEvent(stream, index, "data", str(exc), str(name)) from exc
    return encoded


def version_of_id(entry_id: bytes | str) -> int:
    """The integer after the dash of a ``0-<n>`` stream entry id."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.partition("-")[2])


def decode_event(
    stream: str, version: int, event_type: str, schema: int, data: bytes
) -> DomainEvent:
    """Rebuild the typed event; bad stored data raises a ``StoredDataError`` naming it."""
    cls = event_class(event_type)
    if cls is None:
        raise UnknownEventType(stream, version, event_type)
    try:
        if schema == cls.schema_version:
            return cls.model_validate_json(data)
        raw = json.loads(data)
        if not isinstance(raw, dict):
            raise StoredDataError(stream, version, "d", "payload is not a JSON object")
        return cls.model_validate(upcast(event_type, raw, schema, cls.schema_version))
    except ValidationError as exc:
        raise StoredDataError(stream, version, _error_field(exc), _error_reason(exc)) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:  # json.loads decodes bytes
        raise StoredDataError(stream, version, "d", f"invalid JSON: {exc}") from exc
    except UpcastError as exc:
        raise StoredDataError(stream, version, "s", str(exc)) from exc


def decode_fields(
    stream: str,
    entry_id: bytes,
    fields: Fields,
    *,
    aggregate_type: str,
    aggregate_id: str,
    partition: int,
    version: int | None = None,
) -> RecordedEvent:
    """Decode one aggregate stream entry into a ``RecordedEvent``.

    ``version`` may be given when the caller already knows it (it skips parsing the id).
    """
    if version is None:
        version = version_of_id(entry_id)
    try:  # the common case, without per-field checks; a bad entry takes the checked path
        event_type = fields[b"t"].decode()
        schema = int(fields[b"s"])
        data = fields[b"d"]
        position = int(fields[b"p"])
        event_id = fields[b"i"].decode()
        timestamp_ms = int(fields[b"ts"])
    except (KeyError, ValueError, UnicodeDecodeError):
        event_type = _text(stream, version, fields, b"t")
        schema = _int(stream, version, fields, b"s")
        data = _required(stream, version, fields, b"d")
        position = _int(stream, version, fields, b"p")
        event_id = _text(stream, version, fields, b"i")
        timestamp_ms = _int(stream, version, fields, b"ts")
    return RecordedEvent(
        event=decode_event(stream, version, event_type, schema, data),
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        version=version,
        position=position,
        partition=partition,
        event_id=event_id,
        recorded_at=datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC),
        metadata=_metadata(stream, version, fields.get(b"m")),
        correlation_id=_optional(stream, version, b"c", fields.get(b"c")),
        causation_id=_optional(stream, version, b"z", fields.get(b"z")),
        event_type=event_type,
        schema_version=schema,
    )


def _required(stream: str, version: int, fields: Fields, name: bytes) -> bytes:
    value = fields.get(name)
    if value is None:
        raise StoredDataError(stream, version, name.decode(), "field is missing")
    return value


def _text(stream: str, version: int, fields: Fields, name: bytes) -> str:
    try:
        return _required(stream, version, fields, name).decode()
    except UnicodeDecodeError as exc:
        raise StoredDataError(stream, version, name.decode(), "not UTF-8") from exc


def _int(stream: str, version: int, fields: Fields, name: bytes) -> int:
    raw = _required(stream, version, fields, name)
    try:
        return int(raw)
    except ValueError as exc:
        raise StoredDataError(stream, version, name.decode(), f"not an integer: {raw!r}") from exc


def _optional(stream: str, version: int, name: bytes, value: bytes | None) -> str | None:
    if not value:
        return None
    try:
        return value.decode()
    except UnicodeDecodeError as exc:
        raise StoredDataError(stream, version, name.decode(), "not UTF-8") from exc


def _metadata(stream: str, version: int, raw: bytes | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StoredDataError(stream, version, "m", f"invalid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise StoredDataError(stream, version, "m", "metadata is not a JSON object")
    return value


def _error_field(exc: ValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "d"
    loc = ".".join(str(part) for part in errors[0]["loc"])
    return f"d.{loc}" if loc else "d"


def _error_reason(exc: ValidationError) -> str:
    errors = exc.errors()
    return errors[0]["msg"] if errors else str(exc)
