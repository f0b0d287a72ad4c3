"""Partition log pages: pointers parsed from the log, grouped for one resolve call.

A log entry ``0-<position>`` holds ``k`` (aggregate stream key), ``v`` (version),
``t`` (event type) and ``a`` (aggregate type). Filters apply to the pointers, so events
that do not match are never fetched; the page still reports the last position scanned
so a reader's checkpoint moves past them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import attrs

from eventstore._core.codec import decode_fields, version_of_id
from eventstore._core.errors import StoredDataError
from eventstore._core.keys import AggregateKey, KeySchema
from eventstore._core.records import RecordedEvent
from eventstore._core.replies import field_map, text

__all__ = ["LogPage", "Pointer", "ResolveCall", "parse_pointers", "resolve_call", "parse_resolved"]


@attrs.frozen
class Pointer:
    """One log entry: the event at ``version`` of ``stream`` has ``position``."""

    partition: int
    position: int
    stream: str
    version: int
    event_type: str
    aggregate_type: str
    aggregate_id: str


@attrs.frozen
class LogPage:
    """Events read from one partition log, and the last position the read covered."""

    partition: int
    events: tuple[RecordedEvent, ...]
    last_position: int
    scanned: int


@attrs.frozen
class ResolveCall:
    keys: tuple[str, ...]
    args: tuple[int, ...]
    runs: tuple[tuple[Pointer, ...], ...]


def parse_pointers(
    schema: KeySchema,
    partition: int,
    entries: Sequence[Any],
    *,
    event_types: Collection[str] | None = None,
    aggregate_types: Collection[str] | None = None,
) -> list[Pointer]:
    """Parse log entries into pointers, keeping those that pass the filters."""
    pointers = []
    log_key = schema.log(partition)
    streams: dict[str, AggregateKey | None] = {}  # a page points into few streams
    for entry_id, raw in entries:
        fields = field_map(raw)
        position = version_of_id(entry_id)
        try:
            stream = text(fields[b"k"])
            event_type, aggregate_type = text(fields[b"t"]), text(fields[b"a"])
            version = int(fields[b"v"])
        except (KeyError, ValueError) as exc:
            raise StoredDataError(
                log_key, position, "k/v/t/a", f"malformed log entry: {exc!r}"
            ) from exc
        if event_types is not None and event_type not in event_types:
            continue
        if aggregate_types is not None and aggregate_type not in aggregate_types:
            continue
        parsed = streams.get(stream)
        if parsed is None:
            parsed = streams[stream] = schema.parse_stream(stream)
        if parsed is None:
            raise StoredDataError(
                log_key, position, "k", f"not an aggregate stream key: {stream!r}"
            )
        pointers.append(
            Pointer(
                partition,
                position,
                stream,
                version,
                event_type,
                aggregate_type,
                parsed.aggregate_id,
            )
        )
    return pointers


def resolve_call(pointers: Sequence[Pointer]) -> ResolveCall:
    """Group pointers into runs of consecutive versions of one stream (one XRANGE each)."""
    key_index: dict[str, int] = {}
    runs: list[list[Pointer]] = []
    for pointer in pointers:
        key_index.setdefault(pointer.stream, len(key_index) + 1)
        last = runs[-1][-1] if runs else None
        if (
            last is not None
            and last.stream == pointer.stream
            and last.version + 1 == pointer.version
        ):
            runs[-1].append(pointer)
        else:
            runs.append([pointer])
    args: list[int] = []
    for run in runs:
        args += [key_index[run[0].stream], run[0].version, len(run)]
    return ResolveCall(tuple(key_index), tuple(args), tuple(tuple(run) for run in runs))


def parse_resolved(call: ResolveCall, reply: Sequence[Any]) -> list[RecordedEvent]:
    """Decode the resolved events; a pointer to a missing event is a ``StoredDataError``."""
    events = []
    for run, entries in zip(call.runs, reply, strict=True):
        if len(entries) != len(run):
            _raise_missing(run, entries)
        for pointer, (entry_id, fields) in zip(run, entries, strict=True):
            if entry_id != b"0-%d" % pointer.version:
                _raise_missing(run, entries)
            recorded = decode_fields(
                pointer.stream,
                entry_id,
                field_map(fields),
                aggregate_type=pointer.aggregate_type,
                aggregate_id=pointer.aggregate_id,
                partition=pointer.partition,
                version=pointer.version,
            )
            events.append(recorded)
    return events


def _raise_missing(run: Sequence[Pointer], entries: Sequence[Any]) -> None:
    found = {version_of_id(entry_id) for entry_id, _ in entries}
    for pointer in run:
        if pointer.version not in found:
            raise StoredDataError(
                pointer.stream,
                pointer.version,
                "id",
                f"log position {pointer.position} points at a missing event",
            )
