"""Live notifications: the small JSON message ``append.lua`` publishes per event, typed.

A notification is a hint that an event was appended (Pub/Sub is fire-and-forget: a
subscriber that is disconnected misses it). It carries where the event is, not the event
itself, so a consumer that wants the payload reads it from the aggregate stream.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from datetime import UTC, datetime
from typing import Any

import attrs

from eventstore._core.errors import StoredDataError
from eventstore._core.keys import KeySchema

__all__ = [
    "LiveChannels",
    "LiveNotification",
    "LiveSelection",
    "LiveStats",
    "parse_notification",
]


@attrs.frozen
class LiveChannels:
    """Where the append script publishes notifications, and what a live feed subscribes to.

    Classic Pub/Sub (a standalone server, or a cluster with a primary older than 7.0): one
    channel per aggregate type, ``<ns>:live:<Type>``, sent with PUBLISH, which a cluster
    relays to every node. Sharded (a cluster whose primaries all run 7.0+): one channel per
    aggregate type *and partition*, ``{<ns>:pN}:live:<Type>``, sent with SPUBLISH. It
    hashes to the slot of the partition's keys, which is what lets the append script
    publish on it, and only the node owning that slot carries it. Sharded channels have
    no patterns: a feed subscribes to every partition's channel of each type it wants.
    """

    keys: KeySchema
    sharded: bool = False

    @property
    def publish_command(self) -> str:
        """``SPUBLISH`` on a sharded cluster, ``PUBLISH`` elsewhere."""
        return "SPUBLISH" if self.sharded else "PUBLISH"

    def for_append(self, aggregate_type: str, aggregate_id: str) -> str:
        """The channel an append to this aggregate publishes on."""
        if not self.sharded:
            return self.keys.live_channel(aggregate_type)
        return self.keys.live_shard_channel(self.keys.partition_of(aggregate_id), aggregate_type)

    def for_types(self, aggregate_types: Iterable[str]) -> list[str]:
        """Every channel carrying these aggregate types, sorted."""
        if not self.sharded:
            return sorted({self.keys.live_channel(t) for t in aggregate_types})
        partitions = range(self.keys.partitions)
        return sorted(
            {self.keys.live_shard_channel(p, t) for t in aggregate_types for p in partitions}
        )


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

    def __str__(self) -> str:
        parts = [
            f"{label} {_shown(values)}"
            for label, values in (
                ("aggregate types", self.aggregate_types),
                ("event types", self.event_types),
                ("aggregate ids", self.aggregate_ids),
            )
            if values is not None
        ]
        return "; ".join(parts) or "every notification"

    def keeps(self, notification: LiveNotification) -> bool:
        """Whether ``notification`` passes the event type and aggregate id filters."""
        if self.event_types is not None and notification.event_type not in self.event_types:
            return False
        return self.aggregate_ids is None or notification.aggregate_id in self.aggregate_ids


@attrs.frozen
class LiveStats:
    """Who listens to the namespace's live channels right now.

    ``channels``: channel -> subscribers (SUBSCRIBE, or SSUBSCRIBE when ``sharded``), only
    channels with at least one; ``patterns``: pattern subscriptions on the whole server
    (PUBSUB NUMPAT cannot be narrowed to a namespace; always 0 when ``sharded``, where no
    pattern receives a notification); ``by_type``: aggregate type -> subscribers of its
    channel (sharded: of its busiest partition channel, since a feed subscribes to them all).
    """

    channels: dict[str, int]
    patterns: int
    by_type: dict[str, int] = attrs.field(factory=dict)
    sharded: bool = False

    @property
    def total(self) -> int:
        """Channel subscriptions plus pattern subscriptions (sharded: one per partition)."""
        return sum(self.channels.values()) + self.patterns

    @classmethod
    def of(
        cls, keys: KeySchema, channels: dict[str, int], patterns: int, *, sharded: bool
    ) -> LiveStats:
        """Counts per channel, grouped by aggregate type with the key schema."""
        by_type: dict[str, int] = {}
        for channel, count in channels.items():
            aggregate_type = keys.live_channel_type(channel)
            if aggregate_type is not None:
                by_type[aggregate_type] = max(by_type.get(aggregate_type, 0), count)
        return cls(dict(sorted(channels.items())), patterns, by_type, sharded)


def _shown(values: frozenset[str], most: int = 3) -> str:
    names = sorted(values)
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more


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
