"""``LiveFeed``: the append script's Pub/Sub notifications, typed and filtered.

A real-time hint, not delivery: Pub/Sub drops messages for a subscriber that is slow or
disconnected, and nothing is replayed. Use it to wake up, refresh a screen or push to a
browser; a consumer that needs every event uses ``store.subscribe``.

Channels are one per aggregate type (``<ns>:live:<Type>``). Selecting aggregate types
subscribes to those channels; selecting nothing subscribes to the namespace pattern
(``<ns>:live:*``, one PSUBSCRIBE). Event types and aggregate ids are filtered on arrival:
per-aggregate channels or many patterns would make every PUBLISH slower for everyone.

On Redis Cluster with Redis 7+ the same channel names would be used with SPUBLISH /
SSUBSCRIBE (sharded Pub/Sub, which has no patterns); this store has no cluster support
yet, so plain PUBLISH / SUBSCRIBE is what runs today.
"""

from __future__ import annotations

import random
import threading
import time
from typing import TYPE_CHECKING, Any, Self, cast

from eventstore._core.notifications import (
    LiveNotification,
    LiveSelection,
    LiveStats,
    parse_notification,
)
from eventstore._core.records import RecordedEvent
from eventstore._redis.follower import RETRYABLE

if TYPE_CHECKING:
    import redis

    from eventstore._redis.store import EventStore

__all__ = ["LiveFeed", "live_stats"]

_DATA_MESSAGES = (b"message", b"pmessage", "message", "pmessage")
_CONFIRMATIONS = (b"subscribe", b"psubscribe", "subscribe", "psubscribe")


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
        self, store: EventStore, selection: LiveSelection, *, poll_seconds: float = 0.2
    ) -> None:
        self.store = store
        self.selection = selection
        self.poll_seconds = poll_seconds
        self._stopped = threading.Event()
        self._pubsub = store.client.pubsub()  # type: ignore[no-untyped-call]
        types = selection.aggregate_types
        if types is None:
            self._pubsub.psubscribe(store.keys.live_pattern)
            expected = 1
        else:
            self._pubsub.subscribe(*sorted(store.keys.live_channel(t) for t in types))
            expected = len(types)
        self._await_confirmations(expected)

    def _await_confirmations(self, expected: int) -> None:
        # Returning only once the server confirmed makes "from now" exact: an append that
        # starts after live() returned is seen.
        deadline = time.monotonic() + 10
        while expected and time.monotonic() < deadline:
            message = self._pubsub.get_message(timeout=0.5)
            if message is not None and message["type"] in _CONFIRMATIONS:
                expected -= 1
        if expected:
            self.close()
            raise TimeoutError("the server did not confirm the live subscription in 10 s")

    def wait_for_any(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a notification; True if any came (all drained).

        Used as a wake-up hint by readers that poll the logs (on a cluster).
        """
        woken = False
        try:
            message = self._pubsub.get_message(timeout=timeout)
            while message is not None:
                woken = woken or message["type"] in _DATA_MESSAGES
                message = self._pubsub.get_message(timeout=0)
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
        """Stop and unsubscribe, releasing the connection."""
        self.stop()
        self._pubsub.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> LiveNotification:
        delay = 0.05
        while not self._stopped.is_set():
            try:
                message = self._pubsub.get_message(timeout=self.poll_seconds)
            except RETRYABLE:
                # redis-py re-subscribes when the connection comes back; what was published
                # meanwhile is lost, which is what a hint allows.
                self._stopped.wait(delay * (0.5 + random.random()))
                delay = min(delay * 2, 1.0)
                continue
            delay = 0.05
            notification = self._notification(message)
            if notification is not None and self.selection.keeps(notification):
                return notification
        raise StopIteration

    def _notification(self, message: dict[str, Any] | None) -> LiveNotification | None:
        if message is None or message["type"] not in _DATA_MESSAGES:
            return None
        channel = message["channel"]
        name = channel.decode() if isinstance(channel, bytes) else str(channel)
        return parse_notification(name, message["data"])


def live_stats(client: redis.Redis, pattern: str) -> LiveStats:
    """Subscribers per live channel matching ``pattern``, and the server's pattern count."""
    raw_channels = cast(list[bytes], client.pubsub_channels(pattern))
    channels = [c.decode() if isinstance(c, bytes) else str(c) for c in raw_channels]
    counts = cast(list[tuple[Any, int]], client.pubsub_numsub(*channels)) if channels else []
    numbers = {
        (name.decode() if isinstance(name, bytes) else str(name)): int(count)
        for name, count in counts
    }
    return LiveStats(channels=numbers, patterns=int(client.pubsub_numpat()))
