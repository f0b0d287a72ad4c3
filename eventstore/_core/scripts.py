"""Building script arguments and reading script replies: no I/O here.

The Redis layer sends what these functions build, and hands the replies back to them,
so the protocol can be tested (and shared by a future async front) without a server.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from eventstore._core.codec import decode_fields
from eventstore._core.errors import (
    ConcurrencyError,
    InvalidEvent,
    SnapshotError,
    StoredDataError,
)
from eventstore._core.expected import ExpectedVersion, expected_arg
from eventstore._core.keys import KeySchema, validate_name
from eventstore._core.records import AppendResult, NewEvent, RecordedEvent, Snapshot
from eventstore._core.replies import field_map, text

__all__ = [
    "AppendCall",
    "LoadReply",
    "append_call",
    "parse_append_reply",
    "parse_load_reply",
    "snapshot_from_hash",
]

_EVENT_FIELD_NAMES = (
    "event_id",
    "type",
    "schema_version",
    "timestamp",
    "data",
    "metadata",
    "correlation_id",
    "causation_id",
)


@attrs.frozen
class AppendCall:
    """The keys and arguments of one append script call."""

    stream: str
    partition: int
    keys: tuple[str, ...]
    args: tuple[str | int, ...]
    expected: str
    events: tuple[NewEvent, ...]


def append_call(
    schema: KeySchema,
    aggregate_type: str,
    aggregate_id: str,
    events: Sequence[NewEvent],
    expected: int | ExpectedVersion,
    *,
    snapshot: Snapshot | None = None,
    channel: str = "",
    publish: str = "PUBLISH",
) -> AppendCall:
    """Build the append call for a batch (see ``lua/append.lua`` for the layout).

    ``channel`` ("" for none) gets one notification per event, sent with ``publish``:
    ``"PUBLISH"``, or ``"SPUBLISH"`` for a sharded channel in the partition's slot.
    """
    # a bad type or an empty id makes a key the log readers cannot parse back
    validate_name("aggregate type", aggregate_type)
    stream = schema.stream(aggregate_type, aggregate_id)
    if not aggregate_id:
        raise InvalidEvent(stream, 0, "aggregate_id", "must be a non-empty string")
    if not events:
        raise InvalidEvent(stream, 0, "events", "a batch needs at least one event")
    partition = schema.partition_of(aggregate_id)
    keys = (
        stream,
        schema.log(partition),
        schema.position(partition),
        schema.snapshot(aggregate_type, aggregate_id),
        schema.index(partition, aggregate_type),
        schema.types(partition),
    )
    expected_text = expected_arg(expected)
    args: list[str | int] = [
        expected_text,
        aggregate_type,
        aggregate_id,
        len(events),
        snapshot.version if snapshot else 0,
        snapshot.fingerprint if snapshot else "",
        json.dumps(snapshot.state, separators=(",", ":")) if snapshot else "",
        snapshot.taken_at_ms if snapshot else 0,
        channel,
        partition,
        publish,
    ]
    for event in events:
        args += [
            event.event_id,
            event.event_type,
            event.schema_version,
            event.timestamp_ms,
            event.data,
            event.metadata,
            event.correlation_id,
            event.causation_id,
        ]
    return AppendCall(stream, partition, keys, tuple(args), expected_text, tuple(events))


def parse_append_reply(call: AppendCall, reply: Sequence[Any]) -> AppendResult:
    """Turn the script's reply into a result, or raise the error it reports."""
    status = text(reply[0])
    if status == "ok":
        first_version, first_position = int(reply[1]), int(reply[2])
        positions = tuple(range(first_position, first_position + len(call.events)))
        return AppendResult(
            call.stream, call.partition, first_version, positions, notified=int(reply[3])
        )
    if status == "dup":
        positions = tuple(int(p) for p in reply[2:])
        return AppendResult(call.stream, call.partition, int(reply[1]), positions, duplicate=True)
    if status == "conflict":
        conflicting = int(reply[2]) or None
        expected: int | str = int(call.expected) if call.expected.isdigit() else call.expected
        raise ConcurrencyError(call.stream, expected, int(reply[1]), conflicting)
    if status == "invalid":
        index, field, reason = int(reply[1]), text(reply[2]), text(reply[3])
        event_type = call.events[index - 1].event_type if 0 < index <= len(call.events) else ""
        raise InvalidEvent(call.stream, index, field, reason, event_type)
    if status == "corrupt":
        raise StoredDataError(text(reply[1]), 0, "id", text(reply[2]))
    raise StoredDataError(call.stream, 0, "reply", f"unexpected append reply {reply!r}")


@attrs.frozen
class LoadReply:
    """A parsed load: the stream's current version, a usable snapshot, and the tail."""

    current_version: int
    snapshot: Snapshot | None
    snapshot_skipped: str
    events: tuple[RecordedEvent, ...]


def parse_load_reply(
    schema: KeySchema,
    aggregate_type: str,
    aggregate_id: str,
    fingerprint: str,
    reply: Sequence[Any],
) -> LoadReply:
    """Decode the load script's reply (snapshot JSON and every tail event)."""
    stream = schema.stream(aggregate_type, aggregate_id)
    snap_key = schema.snapshot(aggregate_type, aggregate_id)
    partition = schema.partition_of(aggregate_id)
    current, snap_version = int(reply[0]), int(reply[1])
    if current < 0:
        raise StoredDataError(stream, 0, "id", "last entry id is not 0-<version>")
    snapshot = None
    if snap_version:
        state = _snapshot_state(snap_key, snap_version, reply[2])
        snapshot = Snapshot(snap_version, fingerprint, state)
    events = tuple(
        decode_fields(
            stream,
            entry_id,
            field_map(fields),
            aggregate_type=aggregate_type,
            aggregate_id=aggregate_id,
            partition=partition,
        )
        for entry_id, fields in reply[4]
    )
    return LoadReply(current, snapshot, text(reply[3]), events)


def _snapshot_state(snap_key: str, version: int, raw: bytes | str) -> Mapping[str, Any]:
    try:
        state = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SnapshotError(snap_key, version, "s", f"invalid JSON: {exc}") from exc
    if not isinstance(state, dict):
        raise SnapshotError(snap_key, version, "s", "state is not a JSON object")
    return state


def snapshot_from_hash(key: str, raw: Mapping[bytes, bytes]) -> Snapshot:
    """Decode a snapshot hash (fields ``v``, ``f``, ``s``, ``ts``)."""
    try:
        version = int(raw[b"v"])
        fingerprint = raw[b"f"].decode()
        taken = int(raw.get(b"ts", b"0"))
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        raise SnapshotError(key, 0, "v", f"malformed snapshot hash: {exc!r}") from exc
    state = _snapshot_state(key, version, raw.get(b"s", b""))
    return Snapshot(version, fingerprint, state, taken)
