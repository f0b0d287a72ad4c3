"""The JSON shapes of ``--json`` output (documented in docs/cli.md), built without I/O.

Times are ISO 8601 in UTC; payloads are the events' JSON data. These shapes are a
contract for scripts: add keys, never rename or remove them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from eventstore._core.projections import ProjectionFailure
from eventstore._core.records import RecordedEvent, Snapshot

__all__ = ["event_json", "event_row", "failure_json", "iso_ms", "snapshot_json"]


def iso_ms(ms: int) -> str | None:
    """Unix milliseconds as ISO 8601 UTC (``None`` for 0, an unknown time)."""
    if not ms:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def event_json(recorded: RecordedEvent) -> dict[str, Any]:
    """One recorded event: where it is, when it was recorded, and its data."""
    return {
        "aggregate_type": recorded.aggregate_type,
        "aggregate_id": recorded.aggregate_id,
        "version": recorded.version,
        "partition": recorded.partition,
        "position": recorded.position,
        "event_type": recorded.event_type or recorded.event.event_type,
        "schema_version": recorded.schema_version,
        "event_id": recorded.event_id,
        "recorded_at": recorded.recorded_at.isoformat(timespec="milliseconds"),
        "data": recorded.data,
        "metadata": dict(recorded.metadata),
        "correlation_id": recorded.correlation_id,
        "causation_id": recorded.causation_id,
    }


def event_row(recorded: RecordedEvent, *, with_aggregate: bool) -> list[Any]:
    """A table row for people: position, version, type, time, data (and the aggregate)."""
    when = recorded.recorded_at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    row: list[Any] = [recorded.position, recorded.version]
    if with_aggregate:
        row.append(f"{recorded.aggregate_type}:{recorded.aggregate_id}")
    return [*row, recorded.event_type or recorded.event.event_type, when, recorded.data]


def snapshot_json(snapshot: Snapshot | None, current_fingerprint: str | None) -> dict[str, Any]:
    """A stored snapshot's version, fingerprint and whether the class can use it."""
    if snapshot is None:
        return {"exists": False}
    usable = None if current_fingerprint is None else snapshot.fingerprint == current_fingerprint
    return {
        "exists": True,
        "version": snapshot.version,
        "fingerprint": snapshot.fingerprint,
        "usable": usable,
        "taken_at": iso_ms(snapshot.taken_at_ms),
    }


def failure_json(failure: ProjectionFailure | None) -> dict[str, Any] | None:
    """A projection's last failure: the error and the event it stopped at (or ``None``)."""
    if failure is None:
        return None
    return {
        "error": {"type": failure.error.type, "message": failure.error.message},
        "event_type": failure.event_type,
        "stream": failure.stream,
        "version": failure.version,
        "partition": failure.partition,
        "position": failure.position,
        "failed_at": failure.failed_at.isoformat(timespec="milliseconds"),
    }
