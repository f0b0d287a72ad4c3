"""Internal and returned records: frozen, slotted attrs classes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from aggregates import DomainEvent

__all__ = ["AppendResult", "Entries", "NewEvent", "RecordedEvent", "Snapshot"]

Entries = list[tuple[bytes, dict[bytes, bytes]]]
"""Stream entries as redis-py returns them without decoding: ``(id, fields)`` pairs."""


@attrs.frozen
class NewEvent:
    """An event encoded for an append: everything the script needs, as strings."""

    event_id: str
    event_type: str
    schema_version: int
    timestamp_ms: int
    data: str
    metadata: str = ""
    correlation_id: str = ""
    causation_id: str = ""


@attrs.frozen
class RecordedEvent:
    """An event as stored: the typed domain event plus where and when it was recorded.

    ``version`` is its place in the aggregate's stream (1-based); ``position`` its place
    in its partition's log (gap-free, 1-based); ``recorded_at`` is the writer's clock.
    """

    event: DomainEvent
    aggregate_type: str
    aggregate_id: str
    version: int
    position: int
    partition: int
    event_id: str
    recorded_at: datetime
    metadata: Mapping[str, Any] = attrs.field(factory=dict)
    correlation_id: str | None = None
    causation_id: str | None = None
    event_type: str = ""
    schema_version: int = 1

    @property
    def data(self) -> dict[str, Any]:
        """The event's payload as JSON-compatible data."""
        return self.event.model_dump(mode="json")


@attrs.frozen
class Snapshot:
    """A stored snapshot: the aggregate's state at ``version``."""

    version: int
    fingerprint: str
    state: Mapping[str, Any]
    taken_at_ms: int = 0


@attrs.frozen
class AppendResult:
    """What an append did: the versions and partition positions of the batch.

    ``duplicate`` is true when the batch had already been written (an idempotent re-send):
    nothing was written and the original positions are returned.
    """

    stream: str
    partition: int
    first_version: int
    positions: tuple[int, ...]
    duplicate: bool = False
    notified: int = 0

    @property
    def last_version(self) -> int:
        return self.first_version + len(self.positions) - 1
