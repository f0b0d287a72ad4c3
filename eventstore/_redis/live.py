"""``LiveFeed``: the append script's Pub/Sub notifications, typed and filtered.

A real-time hint, not delivery: Pub/Sub drops messages for a subscriber that is slow or
disconnected, and nothing is replayed. Use it to wake up, refresh a screen or push to a
browser; a consumer that needs every event uses ``store.subscribe``.

Channels are one per aggregate type (``<ns>:live:<Type>``). Selecting aggregate types
subscribes to those channels; selecting nothing subscribes to the namespace pattern
(``<ns>:live:*``, one PSUBSCRIBE). Event types and aggregate ids are filtered on arrival:
per-aggregate channels or many patterns would make every PUBLISH slower for everyone.

On a Redis Cluster whose primaries all run 7.0+, notifications are sharded
(``{<ns>:pN}:live:<Type>``, SPUBLISH / SSUBSCRIBE, see ``LiveChannels``): a feed
subscribes to the channel of every partition for each type it selects. Sharded Pub/Sub
has no patterns, so selecting every type subscribes to the types the namespace has (its
``{<ns>:pN}:types`` sets) and looks for new ones every ``discover_seconds``: the
notifications of a type whose first event comes after that are missed until then.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Self, cast

from redis.cluster import RedisCluster

from eventstore._core.backoff import Backoff
from eventstore._core.notifications import (
    LiveChannels,
    LiveNotification,
    LiveSelection,
    LiveStats,
    parse_notification,
)
from eventstore._core.records import RecordedEvent
from eventstore._core.replies import text
from eventstore._redis.follower import RETRYABLE
from eventstore._redis.pubsub import (
    ClassicSubscriber,
    ShardedSubscriber,
    classic_live_stats,
    sharded_live_stats,
)

if TYPE_CHECKING:
    import redis

    from eventstore._redis.store import EventStore

__all__ = ["LiveFeed", "known_aggregate_types", "live_stats"]


class LiveFeed:
    """An iterator of ``LiveNotification``, subscribed when it is returned.

    ::

        with store.live(aggregate_types=["Account"], event_types=["Deposited"]) as feed:
            for note in feed:
                print(note.aggregate_id, note.version)
                recorded = feed.fetch(note)   # the full event, from its aggregate stream

    ``stop()`` works from any thread and ends the iteration within ``poll_seconds``.
    """

    def __init__(
        self,
        store: EventStore,
        selection: LiveSelection,
        *,
        poll_seconds: float = 0.2,
        discover_seconds: float = 5.0,
    ) -> None:
        self.store = store
        self.selection = selection
        self.poll_seconds = poll_seconds
        self.discover_seconds = discover_seconds
        self._stopped = threading.Event()
        self._next_discovery = float("inf")  # only a sharded feed of every type discovers
        self._subscriber = self._open(store.live_channels, selection.aggregate_types)

    def _open(
        self, channels: LiveChannels, types: frozenset[str] | None
    ) -> ClassicSubscriber | ShardedSubscriber:
        if not channels.sharded:
            if types is None:
                return ClassicSubscriber(
                    self.store.client, [], pattern=self.store.keys.live_pattern
                )
            return ClassicSubscriber(self.store.client, channels.for_types(types))
        if types is None:
            types = frozenset(known_aggregate_types(self.store))
            self._next_discovery = time.monotonic() + self.discover_seconds
        cluster = cast(RedisCluster, self.store.client)
        return ShardedSubscriber(cluster, channels.for_types(types))

    def _discover_if_due(self) -> None:
        if time.monotonic() < self._next_discovery:
            return
        self._next_discovery = time.monotonic() + self.discover_seconds
        types = known_aggregate_types(self.store)
        cast(ShardedSubscriber, self._subscriber).add(self.store.live_channels.for_types(types))

    def open(self) -> None:
        """Nothing to do: the feed subscribed when it was made."""

    def wait_for_any(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a notification; True if any came (all drained).

        Used as a wake-up hint by readers that poll the logs (on a cluster).
        """
        try:
            self._discover_if_due()
            message = self._subscriber.next_message(timeout)
            woken = message is not None
            while message is not None:
                message = self._subscriber.next_message(0)
        except RETRYABLE:
            return False  # the caller polls the logs anyway; redis-py re-subscribes
        return woken

    def fetch(self, notification: LiveNotification) -> RecordedEvent:
        """The event a notification announces, read from its aggregate stream."""
        (recorded,) = self.store.read(
            notification.aggregate_type,
            notification.aggregate_id,
            from_version=notification.version,
            to_version=notification.version,
        )
        return recorded

    def stop(self) -> None:
        """End the iteration (thread-safe)."""
        self._stopped.set()

    def close(self) -> None:
        """Stop and unsubscribe, releasing the connection(s)."""
        self.stop()
        self._subscriber.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> LiveNotification:
        backoff = Backoff()
        while not self._stopped.is_set():
            try:
                self._discover_if_due()
                message = self._subscriber.next_message(self.poll_seconds)
            except RETRYABLE:
                # redis-py re-subscribes when the connection comes back; what was published
                # meanwhile is lost, which is what a hint allows.
                self._stopped.wait(backoff.next_delay())
                continue
            backoff.reset()
            if message is None:
                continue
            notification = parse_notification(*message)
            if self.selection.keeps(notification):
                return notification
        raise StopIteration


def known_aggregate_types(store: EventStore) -> set[str]:
    """The aggregate types present in any partition (the ``{<ns>:pN}:types`` sets)."""
    with store.client.pipeline(transaction=False) as pipe:
        for partition in range(store.partitions):
            pipe.smembers(store.keys.types(partition))
        replies = pipe.execute()
    return {text(name) for members in replies for name in members}


def live_stats(client: redis.Redis, channels: LiveChannels) -> LiveStats:
    """Subscribers per live channel of the namespace (sharded or classic, as published)."""
    if channels.sharded:
        return sharded_live_stats(cast(RedisCluster, client), channels.keys)
    return classic_live_stats(client, channels.keys)
