"""Turning domain events into stored fields and back. JSON only: no pickle, no eval.

Aggregate stream entry fields (short names: they are stored once per event):
``t`` event type, ``s`` schema version, ``i`` event id, ``ts`` writer time (ms),
``p`` partition position, ``d`` payload JSON, and when set ``m`` user metadata JSON,
``c`` correlation id, ``z`` causation id.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from pydantic import ValidationError

from aggregates import DomainEvent, UpcastError, event_class, upcast
from eventstore._core.errors import InvalidEvent, StoredDataError, UnknownEventType
from eventstore._core.records import NewEvent, RecordedEvent, UnfrozenRecord, recorded_event
from eventstore._core.replies import field_map

__all__ = [
    "MAX_VERSION",
    "EntryDecoder",
    "decode_event",
    "decode_fields",
    "encode_batch",
    "encode_event",
    "now_ms",
    "stored_version",
    "version_of_id",
]

Fields = Mapping[bytes, bytes]

MAX_VERSION = 2**53
"""The largest version or position a store writes: Lua (the append and resolve scripts)
counts in doubles, exact up to 2**53; a stored one beyond it is corrupt, never real."""


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
    return _encode(
        event,
        event_id=event_id or _new_event_id(),
        timestamp_ms=timestamp_ms if timestamp_ms is not None else now_ms(),
        metadata=_metadata_json(metadata),
        correlation_id=correlation_id or "",
        causation_id=causation_id or "",
    )


def _encode(
    event: DomainEvent,
    *,
    event_id: str,
    timestamp_ms: int,
    metadata: str,
    correlation_id: str,
    causation_id: str,
) -> NewEvent:
    if not isinstance(event, DomainEvent):
        raise TypeError(f"expected a DomainEvent, got {type(event).__name__}")
    # what model_dump_json() calls, without its keyword plumbing (~0.5 us an event)
    data = event.__pydantic_serializer__.to_json(event).decode()
    return NewEvent(
        event_id,
        event.event_type,
        event.schema_version,
        timestamp_ms,
        data,
        metadata,
        correlation_id,
        causation_id,
    )


def _new_event_id() -> str:
    """A random (version 4) UUID as text, like ``str(uuid.uuid4())`` at a third of the cost."""
    h = os.urandom(16).hex()
    variant = "89ab"[int(h[16], 16) & 3]  # the two top bits of the variant nibble are 10
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"


def _metadata_json(metadata: Mapping[str, Any] | None) -> str:
    return json.dumps(dict(metadata), separators=(",", ":")) if metadata else ""


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
    try:  # one metadata for the whole batch: serialized once
        meta = _metadata_json(metadata)
    except (TypeError, ValueError) as exc:
        raise InvalidEvent(stream, 0, "metadata", str(exc)) from exc
    correlation, causation = correlation_id or "", causation_id or ""
    now = now_ms() if not timestamps_ms else 0  # one clock read: the batch is one write
    encoded = []
    for index, event in enumerate(events, start=1):
        # _encode's work inline (a call with six keywords costs ~0.4 us an event)
        try:
            if not isinstance(event, DomainEvent):
                raise TypeError(f"expected a DomainEvent, got {type(event).__name__}")
            data = event.__pydantic_serializer__.to_json(event).decode()
        except (TypeError, ValueError) as exc:
            name = getattr(event, "event_type", type(event).__name__)
            raise InvalidEvent(stream, index, "data", str(exc), str(name)) from exc
        encoded.append(
            NewEvent(
                (event_ids[index - 1] if event_ids else "") or _new_event_id(),
                event.event_type,
                event.schema_version,
                timestamps_ms[index - 1] if timestamps_ms else now,
                data,
                meta,
                correlation,
                causation,
            )
        )
    return encoded


def version_of_id(entry_id: bytes | str) -> int:
    """The integer after the dash of a ``0-<n>`` stream entry id."""
    if isinstance(entry_id, bytes):
        return int(entry_id.partition(b"-")[2])  # int() reads ASCII digits from bytes
    return int(entry_id.partition("-")[2])


def stored_version(stream: str, entry_id: bytes | str) -> int:
    """The version of an aggregate stream entry id ``0-<n>`` (n >= 1); any other id (not
    written by this store) is a ``StoredDataError`` naming ``stream``."""
    raw = entry_id.decode(errors="replace") if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = raw.partition("-")
    if ms != "0" or not seq.isascii() or not seq.isdigit() or int(seq) < 1:
        raise StoredDataError(stream, 0, "id", f"entry id {raw} is not 0-<version>")
    return int(seq)


def decode_event(
    stream: str, version: int, event_type: str, schema: int, data: bytes
) -> DomainEvent:
    """Rebuild the typed event; bad stored data raises a ``StoredDataError`` naming it."""
    cls = event_class(event_type)
    if cls is None:
        raise UnknownEventType(stream, version, event_type)
    try:
        if schema == cls.schema_version:  # the validator itself: model_validate_json wraps it
            return cast(DomainEvent, cls.__pydantic_validator__.validate_json(data))
        raw = json.loads(data)
        if not isinstance(raw, dict):
            raise StoredDataError(stream, version, "d", "payload is not a JSON object")
        return cls.model_validate(upcast(event_type, raw, schema, cls.schema_version))
    except ValidationError as exc:
        raise StoredDataError(stream, version, _error_field(exc), _error_reason(exc)) from exc
    except (
        json.JSONDecodeError,
        UnicodeDecodeError,
        RecursionError,
    ) as exc:  # deep nesting: RecursionError
        raise StoredDataError(stream, version, "d", f"invalid JSON: {exc}") from exc
    except UpcastError as exc:
        raise StoredDataError(stream, version, "s", str(exc)) from exc


def decode_fields(
    stream: str,
    entry_id: bytes,
    fields: Fields | list[bytes],
    *,
    aggregate_type: str,
    aggregate_id: str,
    partition: int,
    version: int | None = None,
) -> RecordedEvent:
    """Decode one aggregate stream entry into a ``RecordedEvent``.

    ``fields`` is a dict, or the flat ``[name, value, ...]`` list of a raw reply.
    ``version`` may be given when the caller already knows it (it skips parsing the id).
    """
    if version is None:
        version = stored_version(stream, entry_id)
    if type(fields) is list and fields[:12:2] == _LAYOUT and len(fields) % 2 == 0:
        # the layout the append script writes: no dict for the six fields every event has
        values = fields[1:12:2]
        rest = dict(zip(fields[12::2], fields[13::2], strict=True)) if len(fields) > 12 else _NONE
    else:
        values, rest = _checked_layout(stream, version, fields)
    try:  # the common case, without per-field checks; a bad entry takes the checked path
        event_type = values[0].decode()
        schema = int(values[1])
        event_id = values[2].decode()
        timestamp_ms = int(values[3])
        position = int(values[4])
        data = values[5]
    except (ValueError, UnicodeDecodeError):
        checked = dict(zip(_LAYOUT, values, strict=True))
        event_type = _text(stream, version, checked, b"t")
        schema = _int(stream, version, checked, b"s")
        event_id = _text(stream, version, checked, b"i")
        timestamp_ms = _int(stream, version, checked, b"ts")
        position = _int(stream, version, checked, b"p")
        data = values[5]
    if not 1 <= position <= MAX_VERSION:
        raise StoredDataError(stream, version, "p", f"position {position} is not in 1..2**53")
    if rest:
        metadata = _metadata(stream, version, rest.get(b"m"))
        correlation_id = _optional(stream, version, b"c", rest.get(b"c"))
        causation_id = _optional(stream, version, b"z", rest.get(b"z"))
    else:  # most events carry neither metadata nor causal ids
        metadata, correlation_id, causation_id = {}, None, None
    return recorded_event(
        decode_event(stream, version, event_type, schema, data),
        aggregate_type,
        aggregate_id,
        version,
        position,
        partition,
        event_id,
        _timestamp(stream, version, timestamp_ms),
        metadata,
        correlation_id,
        causation_id,
        event_type,
        schema,
    )


class EntryDecoder:
    """Decodes many entries, remembering each event type's class for the batch.

    Entries in the layout the append script writes (six fields, current schema version)
    take a fast path: the same checks as ``decode_fields`` (type known, schema version,
    payload, position, time, event id), with no per-field dict and the type looked up
    once per batch. Anything else, and anything the fast path refuses, goes through
    ``decode_fields``, which upcasts old payloads and raises the ``StoredDataError``
    naming the field: one place decides what an error says. A decoder lives for one
    batch, so a class registered meanwhile is seen by the next one.
    """

    __slots__ = ("_times", "_types")

    def __init__(self) -> None:
        # raw type -> (type name, validate_json, schema version as stored, as int)
        self._types: dict[bytes, tuple[str, Any, bytes, int] | None] = {}
        self._times: dict[bytes, datetime] = {}  # the events of one append share theirs

    def record(  # noqa: PLR0917 (called per event on catch-up: keywords cost ~10%)
        self,
        stream: str,
        entry_id: bytes,
        fields: Fields | list[bytes],
        aggregate_type: str,
        aggregate_id: str,
        partition: int,
        version: int,
    ) -> RecordedEvent:
        """The entry as a ``RecordedEvent`` (see ``decode_fields``)."""
        fast = self._fast(fields)
        if fast is not None:
            # recorded_event(...) inlined: catch-up builds one per event, a call is ~0.1 us
            record: Any = UnfrozenRecord()
            record.event, record.position, record.event_id, record.recorded_at, known = fast
            record.aggregate_type = aggregate_type
            record.aggregate_id = aggregate_id
            record.version = version
            record.partition = partition
            record.metadata = {}
            record.correlation_id = None
            record.causation_id = None
            record.event_type = known[0]
            record.schema_version = known[3]
            record.__class__ = RecordedEvent
            return cast(RecordedEvent, record)
        return decode_fields(
            stream,
            entry_id,
            fields,
            aggregate_type=aggregate_type,
            aggregate_id=aggregate_id,
            partition=partition,
            version=version,
        )

    def event(
        self, stream: str, entry_id: bytes, fields: Fields | list[bytes], version: int
    ) -> DomainEvent:
        """Only the typed event, with every check ``record`` makes (no record is built)."""
        fast = self._fast(fields)
        if fast is not None:
            return fast[0]
        return decode_fields(
            stream,
            entry_id,
            fields,
            aggregate_type="",  # not part of the event
            aggregate_id="",
            partition=0,
            version=version,
        ).event

    def _fast(
        self, fields: Fields | list[bytes]
    ) -> tuple[DomainEvent, int, str, datetime, tuple[str, Any, bytes, int]] | None:
        if type(fields) is not list or len(fields) != 12 or fields[::2] != _LAYOUT:
            return None
        known = self._types.get(fields[1], _UNSEEN)
        if known is _UNSEEN:
            known = self._types[fields[1]] = _type_info(fields[1])
        if known is None or fields[3] != known[2]:
            return None  # unknown type or another schema version: the checked path
        try:
            event = known[1](fields[11])
            position = int(fields[9])
            recorded_at = self._times.get(fields[7])
            if recorded_at is None:
                recorded_at = self._times[fields[7]] = _recorded_at(int(fields[7]))
            event_id = fields[5].decode()
        except (ValueError, OverflowError, OSError, RecursionError):
            return None  # ValidationError and UnicodeDecodeError are ValueErrors
        if not 1 <= position <= MAX_VERSION:
            return None
        return event, position, event_id, recorded_at, known


_UNSEEN: Any = object()


def _type_info(raw_type: Any) -> tuple[str, Any, bytes, int] | None:
    try:
        name = raw_type.decode()
    except (AttributeError, UnicodeDecodeError):
        return None
    cls = event_class(name)
    if cls is None:
        return None
    schema = cls.schema_version
    return name, cls.__pydantic_validator__.validate_json, str(schema).encode(), schema


_LAYOUT = [b"t", b"s", b"i", b"ts", b"p", b"d"]
"""The fields every event has, in the order the append script writes them."""
_NONE: Fields = {}


def _checked_layout(
    stream: str, version: int, fields: Fields | list[bytes]
) -> tuple[list[bytes], Fields]:
    """The six fields every event has (each checked present) and the others, from any shape."""
    try:
        mapping = field_map(fields)
    except (ValueError, TypeError) as exc:
        raise StoredDataError(stream, version, "fields", "not field/value pairs") from exc
    values = [_required(stream, version, mapping, name) for name in _LAYOUT]
    return values, mapping


def _timestamp(stream: str, version: int, timestamp_ms: int) -> datetime:
    try:
        return _recorded_at(timestamp_ms)
    except (OverflowError, ValueError, OSError) as exc:  # beyond what datetime holds
        raise StoredDataError(stream, version, "ts", f"not a time: {timestamp_ms}") from exc


@functools.lru_cache(maxsize=1024)
def _recorded_at(timestamp_ms: int) -> datetime:
    # the events of one append share their millisecond: build each datetime once
    return datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC)


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
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
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
