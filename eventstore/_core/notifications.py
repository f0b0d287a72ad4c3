"""Live notifications: the small JSON message ``append.lua`` publishes per event, typed.

A notification is a hint that an event was appended (Pub/Sub is fire-and-forget: a
subscriber that is disconnected misses it). It carries where the event is, not the event
itself, so a consumer that wants the payload reads it from the aggregate stream.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

import attrs

from eventstore._core.errors import StoredDataError

__all__ = ["LiveNotification", "LiveSelection", "LiveStats", "parse_notification"]


@attrs.frozen
class LiveNotification:
    """One appended event, as announced on its aggregate type's channel."""

    channel: str
    aggregate_type: str
    aggregate_id: str
    version: int
    position: int
    partition: int
    event_type: str
    event_id: str
    recorded_at: datetime


@attrs.frozen
class LiveSelection:
    """Which notifications a live feed keeps.

    Channels are per aggregate type, so ``aggregate_types`` picks what the server sends;
    ``event_types`` and ``aggregate_ids`` are applied on arrival (per-aggregate channels
    or patterns would slow every publish down, see docs/reading.md).
    """

    aggregate_types: frozenset[str] | None = None
    event_types: frozenset[str] | None = None
    aggregate_ids: frozenset[str] | None = None

    @classmethod
    def of(
        cls,
        aggregate_types: Collection[str] | str | None,
        event_types: Collection[str] | str | None,
        aggregate_ids: Collection[str] | str | None,
    ) -> LiveSelection:
        """Build a selection; a single string means a one-element set."""
        return cls(_names(aggregate_types), _names(event_types), _names(aggregate_ids))

    def keeps(self, notification: LiveNotification) -> bool:
        """Whether ``notification`` passes the event type and aggregate id filters."""
        if self.event_types is not None and notification.event_type not in self.event_types:
            return False
        return self.aggregate_ids is None or notification.aggregate_id in self.aggregate_ids


@attrs.frozen
class LiveStats:
    """Who listens to the namespace's live channels right now.

    ``channels``: channel -> subscribers (SUBSCRIBE), only channels with at least one;
    ``patterns``: pattern subscriptions on the whole server (PUBSUB NUMPAT cannot be
    narrowed to a namespace).
    """

    channels: dict[str, int]
    patterns: int

    @property
    def total(self) -> int:
        """Channel subscribers plus pattern subscriptions."""
        return sum(self.channels.values()) + self.patterns


def _names(value: Collection[str] | str | None) -> frozenset[str] | None:
    if value is None:
        return None
    return frozenset([value] if isinstance(value, str) else value)


def parse_notification(channel: str, payload: bytes | str) -> LiveNotification:
    """Decode a published message; a malformed one raises ``StoredDataError``."""
    try:
        raw: dict[str, Any] = json.loads(payload)
        return LiveNotification(
            channel=channel,
            aggregate_type=str(raw["aggregate_type"]),
            aggregate_id=str(raw["aggregate_id"]),
            version=int(raw["version"]),
            position=int(raw["position"]),
            partition=int(raw["partition"]),
            event_type=str(raw["event_type"]),
            event_id=str(raw["event_id"]),
            recorded_at=datetime.fromtimestamp(int(raw["recorded_at"]) / 1000, tz=UTC),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise StoredDataError(channel, 0, "message", f"malformed notification: {exc!r}") from exc
