# unasync: generates the sync module of the same name
"""``AsyncLiveFeed``: the append script's Pub/Sub notifications, typed and filtered.

A real-time hint, not delivery: Pub/Sub drops messages for a subscriber that is slow or
disconnected, and nothing is replayed. Use it to wake up, refresh a screen or push to a
browser; a consumer that needs every event uses ``store.subscribe``.

::

    async with store.live("ChatRoom", aggregate_ids=room_id) as feed:
        async for note in feed:
            recorded = await feed.fetch(note)   # the full event, from its aggregate stream

Channels are one per aggregate type (``<ns>:live:<Type>``). Selecting aggregate types
subscribes to those channels; selecting nothing subscribes to the namespace pattern
(``<ns>:live:*``, one PSUBSCRIBE). Event types and aggregate ids are filtered on arrival:
per-aggregate channels or many patterns would make every PUBLISH slower for everyone.

Many feeds, few connections: every feed of one store in this process shares one
subscription connection per server (``eventstore._async.hub``), which subscribes to a
channel while some feed needs it. Each notification is handed to the feeds that keep it
by a dict lookup on its aggregate type and id, into each feed's bounded queue
(``max_queue``): a feed whose consumer does not keep up raises ``LiveFeedFellBehind``
from its iteration, and never slows the others down.

On a Redis Cluster whose primaries all run 7.0+, notifications are sharded
(``{<ns>:pN}:live:<Type>``, SPUBLISH / SSUBSCRIBE, see ``LiveChannels``): a feed
subscribes to the channel of every partition for each type it selects. Sharded Pub/Sub
has no patterns, so selecting every type subscribes to the types the namespace has (its
``{<ns>:pN}:types`` sets) and looks for new ones every ``discover_seconds``: the
notifications of a type whose first event comes after that are missed until then.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Self, cast

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster

from eventstore._async.hub import AsyncLiveHub, join_live
from eventstore._async.io import AsyncEvent
from eventstore._async.pubsub import classic_live_stats, sharded_live_stats
from eventstore._async.shards import RETRYABLE
from eventstore._core.errors import LiveFeedFellBehind
from eventstore._core.liveroutes import DEFAULT_MAX_QUEUE, LiveInbox
from eventstore._core.notifications import (
    LiveChannels,
    LiveNotification,
    LiveSelection,
    LiveStats,
)
from eventstore._core.records import RecordedEvent
from eventstore._core.replies import text

if TYPE_CHECKING:
    from eventstore._async.store import AsyncEventStore

__all__ = ["AsyncLiveFeed", "known_aggregate_types", "live_stats"]


class AsyncLiveFeed:
    """An iterator of ``LiveNotification``, subscribed when it is entered (or first read).

    ::

        async with store.live(["Account"], event_types=["Deposited"]) as feed:
            async for note in feed:
                print(note.aggregate_id, note.version)
                recorded = await feed.fetch(note)

    ``stop()`` works from anywhere (another task or thread) and ends the iteration at
    once. Up to ``max_queue`` notifications wait for the consumer; past that the feed
    drops them and its iteration raises ``LiveFeedFellBehind`` (once): re-read what you
    show from the store, then iterate again. ``poll_seconds`` is how often a sharded feed
    of every type wakes up to look for new types (every ``discover_seconds``).
    """

    def __init__(
        self,
        store: AsyncEventStore,
        selection: LiveSelection,
        *,
        poll_seconds: float = 0.2,
        discover_seconds: float = 5.0,
        max_queue: int = DEFAULT_MAX_QUEUE,
    ) -> None:
        self.store = store
        self.selection = selection
        self.poll_seconds = poll_seconds
        self.discover_seconds = discover_seconds
        self._stopped = AsyncEvent()
        self._wake = AsyncEvent()
        self._inbox = LiveInbox(selection, max_queue=max_queue, wake=self._wake.set)
        self._hub: AsyncLiveHub | None = None
        self._closed = False
        # sharded Pub/Sub has no patterns: a feed of every type follows the types found
        self._discovers = store.live_channels.sharded and selection.aggregate_types is None
        self._next_discovery = float("inf")

    @property
    def max_queue(self) -> int:
        """How many notifications may wait for the consumer before the feed falls behind."""
        return self._inbox.max_queue

    @property
    def fell_behind(self) -> bool:
        """Whether notifications were dropped that the iteration has not reported yet."""
        return self._inbox.fell_behind

    async def open(self) -> None:
        """Subscribe (through the store's shared connection), confirmed by the server:
        every append that starts after this returns is seen. Idempotent."""
        if self._hub is not None or self._closed:
            return
        known: set[str] = set()
        if self._discovers:
            known = await known_aggregate_types(self.store)
            self._next_discovery = time.monotonic() + self.discover_seconds
        hub = await join_live(self.store, self._inbox, known)
        if self._closed:  # closed from elsewhere while it subscribed
            await hub.leave(self._inbox)
            return
        self._hub = hub

    async def wait_for_any(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a notification; True if any came (all drained).

        Used as a wake-up hint by readers that poll the logs (on a cluster).
        """
        await self.open()
        await self._discover_if_due()
        self._wake.clear()
        if self._drain():
            return True
        await self._wake.wait(timeout)
        return self._drain()

    def _drain(self) -> bool:
        woken = False
        try:
            while self._inbox.take() is not None:
                woken = True
        except LiveFeedFellBehind:
            return True  # a hint reader re-reads the logs anyway
        return woken

    async def fetch(self, notification: LiveNotification) -> RecordedEvent:
        """The event a notification announces, read from its aggregate stream."""
        (recorded,) = await self.store.read(
            notification.aggregate_type,
            notification.aggregate_id,
            from_version=notification.version,
            to_version=notification.version,
        )
        return recorded

    def stop(self) -> None:
        """End the iteration (from any task or thread)."""
        self._stopped.set()
        self._wake.set()

    async def aclose(self) -> None:
        """Stop and leave the shared subscription (its last feed closes the connection)."""
        self.stop()
        self._closed = True
        hub, self._hub = self._hub, None
        if hub is not None:
            await hub.leave(self._inbox)

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> LiveNotification:
        await self.open()
        while True:
            self._wake.clear()  # before looking: a notification queued after wakes us
            if self._stopped.is_set():
                raise StopAsyncIteration
            notification = self._inbox.take()  # may raise LiveFeedFellBehind
            if notification is not None:
                return notification
            if self._discovers:
                await self._discover_if_due()
                await self._wake.wait(self.poll_seconds)
            else:
                await self._wake.wait()

    async def _discover_if_due(self) -> None:
        if self._hub is None or time.monotonic() < self._next_discovery:
            return
        self._next_discovery = time.monotonic() + self.discover_seconds
        try:
            types = await known_aggregate_types(self.store)
        except RETRYABLE:
            return  # looked for again next time
        await self._hub.discover(types)


async def known_aggregate_types(store: AsyncEventStore) -> set[str]:
    """The aggregate types present in any partition (the ``{<ns>:pN}:types`` sets)."""
    async with store.client.pipeline(transaction=False) as pipe:
        for partition in range(store.partitions):
            pipe.smembers(store.keys.types(partition))
        replies = await pipe.execute()
    return {text(name) for members in replies for name in members}


async def live_stats(client: redis.Redis, channels: LiveChannels) -> LiveStats:
    """Subscribers per live channel of the namespace (sharded or classic, as published).

    Feeds share their store's connection: these count connections (stores listening),
    not feeds.
    """
    if channels.sharded:
        return await sharded_live_stats(cast(RedisCluster, client), channels.keys)
    return await classic_live_stats(client, channels.keys)
