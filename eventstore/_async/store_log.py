# unasync: generates the sync module of the same name
"""The store's side of the partition logs: positions, pages, catch-up reads and
subscriptions, live feeds, consumer groups and trimming (``AsyncEventStore`` inherits it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from typing import TYPE_CHECKING, Any, cast

import redis.asyncio as redis
from redis.commands.core import AsyncScript

from eventstore._async.batch import send_batch
from eventstore._async.follower import AsyncLogFollower, fetch_events
from eventstore._async.io import opened
from eventstore._async.shards import AsyncRawClients
from eventstore._async.stored import raise_if_wrong_type, refusals, stored_int
from eventstore._async.subscription import AsyncCatchUpSubscription
from eventstore._core.checkpoint import FROM_NOW, After, Checkpoint
from eventstore._core.codec import version_of_id
from eventstore._core.groups import TrimResult, parse_trim_reply
from eventstore._core.keys import KeySchema
from eventstore._core.log import LogPage, Pointer, parse_pointers
from eventstore._core.notifications import LiveChannels, LiveSelection, LiveStats
from eventstore._core.records import RecordedEvent
from eventstore._core.replies import stored_count
from eventstore._core.types import TypeFilter, type_names
from eventstore._redis.permissions import raise_if_denied

if TYPE_CHECKING:
    from eventstore._async.groups import AsyncConsumerGroup, Start
    from eventstore._async.live import AsyncLiveFeed
    from eventstore._async.store import AsyncEventStore

__all__ = ["AsyncStoreLog"]


class AsyncStoreLog:
    """What a store does with its partition logs; the store sets the attributes below."""

    keys: KeySchema
    client: redis.Redis
    live_channels: LiveChannels
    _raw: AsyncRawClients
    _trim: AsyncScript

    @property
    def _store(self) -> AsyncEventStore:
        return cast("AsyncEventStore", self)  # the one class that inherits this

    @property
    def partitions(self) -> int:
        """The namespace's number of partitions (fixed when it was created)."""
        return self.keys.partitions

    async def _send(self, key: str, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """``commands`` (on ``key``'s slot) to the server holding ``key``, raw replies. On a
        cluster, a node gone or a slot moved re-reads the slot map and sends once more."""
        try:
            return await send_batch(self._raw.for_key(key), commands)
        except self._raw.retryable:
            if not self._raw.is_cluster:
                raise
            await self._raw.refresh()
            return await send_batch(self._raw.for_key(key), commands)

    async def last_position(self, partition: int) -> int:
        """The last position handed out in ``partition`` (0 before the first event)."""
        key = self.keys.position(partition)
        async with refusals(self.client, {key: "string"}):
            return stored_count(key, "value", await self.client.get(key))

    async def read_log(
        self,
        partition: int,
        after: int = 0,
        *,
        limit: int = 1000,
        event_types: TypeFilter = None,
        aggregate_types: TypeFilter = None,
    ) -> LogPage:
        """Up to ``limit`` log entries of ``partition`` after position ``after``, resolved.

        Two round trips: XRANGE on the log, then one XREAD fetching the event behind every
        pointer that passes the filters (event and aggregate types, as names or classes).
        ``last_position`` is the last position scanned (filtered out or not), so a reader
        resumes after it.
        """
        if not 0 <= partition < self.partitions:
            raise ValueError(f"partition {partition} is not in 0..{self.partitions - 1}")
        log = self.keys.log(partition)
        page = ("XRANGE", log, f"({_log_id(after)}", "+", "COUNT", limit)
        async with refusals(self.client, {log: "stream"}, command="xrange"):
            (entries,) = await self._send(log, [page])
        if not entries:
            return LogPage(partition, (), after, 0)
        pointers = parse_pointers(
            self.keys,
            partition,
            entries,
            event_types=type_names(event_types, "event_types"),
            aggregate_types=type_names(aggregate_types, "aggregate_types"),
        )
        last_position = version_of_id(entries[-1][0])
        return LogPage(partition, tuple(await self.resolve(pointers)), last_position, len(entries))

    async def resolve(self, pointers: Sequence[Pointer]) -> list[RecordedEvent]:
        """Fetch the events behind log pointers of one partition in one round trip."""
        try:
            return await fetch_events(self._raw, pointers)
        except redis.ResponseError as exc:
            # the page's keys are only worth listing on the error path
            keys = tuple(dict.fromkeys(pointer.stream for pointer in pointers))
            raise_if_denied(exc, self.client, keys=keys, command="xread")
            await raise_if_wrong_type(exc, self.client, dict.fromkeys(keys, "stream"))
            raise

    # -- subscriptions, projections, live notifications -----------------------------------

    async def head(self) -> Checkpoint:
        """The current end of every partition log; ``after=store.head()`` skips history."""
        keys = [self.keys.position(partition) for partition in range(self.partitions)]
        async with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.get(key)
            positions = await pipe.execute(raise_on_error=False)
        return Checkpoint(
            tuple(
                [
                    await stored_int(self.client, k, "value", raw)
                    for k, raw in zip(keys, positions, strict=True)
                ]
            )
        )

    async def checkpoint(self, after: After = None) -> Checkpoint:
        """What ``after=`` accepts, as a ``Checkpoint`` of this store (``FROM_NOW`` = head)."""
        if isinstance(after, str) and after.strip() == FROM_NOW:
            return await self.head()
        return Checkpoint.coerce(after, self.partitions)

    async def read_all(
        self,
        after: After = None,
        *,
        event_types: TypeFilter = None,
        aggregate_types: TypeFilter = None,
        limit: int | None = None,
        page_size: int = 1000,
    ) -> AsyncIterator[RecordedEvent]:
        """Every event after ``after`` (``None``: from the beginning), then stop.

        In order within each partition (pages of the partitions take turns); filters by
        event type and aggregate type (names or classes) are applied to the log before
        events are fetched. While iterating, the next page's reads are already written;
        ``aclose()`` the iterator to stop early.
        """
        if limit is not None and limit <= 0:
            return
        follower = AsyncLogFollower(
            self.keys,
            self.client,
            await self.checkpoint(after),
            event_types=type_names(event_types, "event_types"),
            aggregate_types=type_names(aggregate_types, "aggregate_types"),
            page_size=page_size,
            live=False,
        )
        taken = 0
        async for page in follower.pages():
            for event in page.events:
                yield event
                taken += 1
                if taken == limit:
                    return

    def subscribe(
        self,
        after: After = None,
        *,
        event_types: TypeFilter = None,
        aggregate_types: TypeFilter = None,
        page_size: int = 500,
        block_ms: int = 1000,
        reconnect_for: float = 60.0,
    ) -> AsyncCatchUpSubscription:
        """A catch-up subscription: the events after ``after``, then new ones live.

        ``after`` is a ``Checkpoint`` (or its string), a position with one partition,
        ``None`` for the beginning or ``FROM_NOW`` for new events only. Use it in an
        ``async with`` block; see ``AsyncCatchUpSubscription``.
        """
        return opened(
            AsyncCatchUpSubscription(
                self._store,
                after,
                event_types=type_names(event_types, "event_types"),
                aggregate_types=type_names(aggregate_types, "aggregate_types"),
                page_size=page_size,
                block_ms=block_ms,
                reconnect_for=reconnect_for,
            )
        )

    def live(
        self,
        aggregate_types: TypeFilter | str = None,
        *,
        event_types: TypeFilter | str = None,
        aggregate_ids: Collection[str] | str | None = None,
        poll_seconds: float = 0.2,
        discover_seconds: float = 5.0,
        max_queue: int = 1000,
    ) -> AsyncLiveFeed:
        """Live notifications (Pub/Sub hints, not delivery), subscribed on entry.

        ``aggregate_types`` picks channels (``None``: every type in the namespace);
        ``event_types`` and ``aggregate_ids`` filter on arrival. On a sharded cluster
        (``live_channels.sharded``) there are no patterns: ``None`` subscribes to the types
        the namespace has and looks for new ones every ``discover_seconds``. Every feed
        of the store shares one connection per server; up to ``max_queue`` notifications
        wait for this one's consumer, past that it raises ``LiveFeedFellBehind``.
        """
        from eventstore._async.live import AsyncLiveFeed

        selection = LiveSelection.of(
            type_names(aggregate_types, "aggregate_types"),
            type_names(event_types, "event_types"),
            aggregate_ids,
        )
        return opened(
            AsyncLiveFeed(
                self._store,
                selection,
                poll_seconds=poll_seconds,
                discover_seconds=discover_seconds,
                max_queue=max_queue,
            )
        )

    async def live_stats(self) -> LiveStats:
        """Subscribers per live channel of the namespace right now (for ``stats``)."""
        from eventstore._async.live import live_stats

        return await live_stats(self.client, self.live_channels)

    # -- consumer groups ------------------------------------------------------------------

    async def consumer_group(self, name: str, *, start: Start = "beginning") -> AsyncConsumerGroup:
        """The consumer group ``name`` over every partition log, created if needed.

        ``start="beginning"`` delivers the whole history, ``"end"`` only events appended
        after the group was created. Creating an existing group adopts it as it is.
        """
        from eventstore._async.groups import AsyncConsumerGroup

        return await AsyncConsumerGroup.open(self._store, name, start=start)

    async def safe_trim_point(self, partition: int) -> int:
        """The lowest position of ``partition`` still needed by a consumer group (pending
        or undelivered) or a registered checkpoint: log entries below it may be trimmed."""
        return (await self._trim_call(partition, trim=False, before=0)).safe_point

    async def trim_log(self, partition: int | None = None, *, before: int = 0) -> list[TrimResult]:
        """Delete log entries no group or registered checkpoint still needs (explicit only).

        Trims every partition (or just ``partition``) up to its safe trim point, or up
        to ``before`` if that is lower; never further. Aggregate streams are never
        trimmed, so dead letters and ``read``/``load`` keep working.
        """
        partitions = range(self.partitions) if partition is None else [partition]
        return [await self._trim_call(p, trim=True, before=before) for p in partitions]

    async def _trim_call(self, partition: int, *, trim: bool, before: int) -> TrimResult:
        if not 0 <= partition < self.partitions:
            raise ValueError(f"partition {partition} is not in 0..{self.partitions - 1}")
        keys = (
            self.keys.log(partition),
            self.keys.checkpoints(partition),
            self.keys.position(partition),
        )
        try:
            reply = await self._trim(keys=keys, args=("trim" if trim else "check", max(before, 0)))
        except redis.ResponseError as exc:
            raise_if_denied(exc, self.client, keys=keys, script=("trim", self._trim))
            raise
        return parse_trim_reply(partition, reply)


def _log_id(position: int) -> str:
    return f"0-{position}" if position > 0 else "0-0"
