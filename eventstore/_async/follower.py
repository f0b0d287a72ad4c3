# unasync: generates the sync module of the same name
"""``AsyncLogFollower``: reads every partition log in pages, catching up then following live.

One cursor per partition (a ``Checkpoint``). Catch-up reads ``XRANGE (<cursor> + COUNT n``
per partition, round-robin, until each returns a short page; then one ``XREAD BLOCK``
waits on all the logs at once from the concrete cursor ids. Never ``$``: ``$`` means
"whatever is last when this call arrives", so events appended between two calls would be
skipped. The events behind a page of pointers are fetched with one ``XREAD`` (without
``BLOCK``) over the page's aggregate streams, see ``fetch_call``. Both reads go to the
server holding the partition with redis-py's reply callbacks off: the core parses the
raw replies (a callback would build a dict per entry first). During catch-up the reads
of the next page are written before this one is decoded (``read_ahead_pages``), so the
server works while the client decodes; the live phase reads a page at a time.

On a lost connection (or a restarting server) the follower backs off and retries from its
cursor: a page is only handed out once its replies are fully read (its events are
decoded as they are taken), and the cursor only moves after the consumer is done with
it, so a retry repeats nothing delivered and skips nothing (pages read ahead are read
again).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Collection, Sequence
from typing import Any, TypeVar

import redis.asyncio as redis

from eventstore._async.batch import send_batch
from eventstore._async.catchup import raise_refused_fetch, read_ahead_pages
from eventstore._async.io import AsyncEvent, Attempt, Wake
from eventstore._async.shards import RETRYABLE, AsyncRawClients
from eventstore._async.stored import raise_if_wrong_type
from eventstore._core.backoff import Backoff
from eventstore._core.checkpoint import Checkpoint
from eventstore._core.codec import version_of_id
from eventstore._core.errors import SubscriptionError
from eventstore._core.keys import KeySchema
from eventstore._core.log import FollowedPage, Pointer, fetch_call, parse_fetched, parse_pointers
from eventstore._core.records import RecordedEvent

__all__ = ["RETRYABLE", "AsyncLogFollower", "fetch_events"]

T = TypeVar("T")


class AsyncLogFollower:
    """Pages of resolved events from every partition, after ``cursor``.

    ``live=False`` stops once every partition is drained (a plain read); otherwise the
    follower blocks for new entries until ``stopped`` is set. ``caught_up`` is set once the
    history that existed when it started has been handed out and consumed.
    """

    def __init__(
        self,
        keys: KeySchema,
        client: redis.Redis,
        cursor: Checkpoint,
        *,
        event_types: Collection[str] | None = None,
        aggregate_types: Collection[str] | None = None,
        page_size: int = 500,
        block_ms: int = 1000,
        live: bool = True,
        reconnect_for: float = 60.0,
        stopped: AsyncEvent | None = None,
        caught_up: AsyncEvent | None = None,
        wake: Wake | None = None,
    ) -> None:
        if page_size < 1 or block_ms < 1:
            raise ValueError(f"page_size and block_ms must be >= 1, got {page_size}, {block_ms}")
        self.keys = keys
        self.client = client
        self.cursor = cursor
        self.event_types = frozenset(event_types) if event_types is not None else None
        self.aggregate_types = frozenset(aggregate_types) if aggregate_types is not None else None
        self.page_size = page_size
        self.block_ms = block_ms
        self.live = live
        self.reconnect_for = reconnect_for
        self.stopped = stopped or AsyncEvent()
        self.caught_up = caught_up or AsyncEvent()
        self.wake = wake
        self._raw = AsyncRawClients(client)

    async def pages(self) -> AsyncIterator[FollowedPage]:
        """Yield pages in order per partition; the cursor moves when the consumer resumes."""
        async for page in self._catch_up(list(range(self.keys.partitions))):
            yield page
        if self.stopped.is_set():
            return
        self.caught_up.set()
        while self.live and not self.stopped.is_set():
            pages = await self._retrying(self._wait_live)
            for page in pages or ():
                if not page.scanned:
                    continue
                yield page
                self.cursor = self.cursor.advance(page.partition, page.last_position)
                if self.stopped.is_set():
                    return

    async def _catch_up(self, pending: list[int]) -> AsyncIterator[FollowedPage]:
        """Pages of ``pending`` partitions until each gives a short page, reads written
        ahead (``read_ahead_pages``); reconnects and resumes from the cursor. Returns early
        once ``stopped`` is set."""
        backoff, delivered = Backoff(), 0
        while pending:
            if self.stopped.is_set():
                return
            cursors = {partition: self.cursor.position(partition) for partition in pending}
            pages = read_ahead_pages(self.keys, self._raw, cursors, self.page_size, self._pointers)
            try:
                async with contextlib.aclosing(pages):
                    async for page in pages:
                        if page.scanned < self.page_size:
                            pending.remove(page.partition)  # drained
                        if page.scanned:
                            yield page
                            self.cursor = self.cursor.advance(page.partition, page.last_position)
                            delivered += 1
                        if self.stopped.is_set():
                            return
            except self._raw.retryable as exc:
                await self._back_off(backoff, delivered, exc)

    async def _back_off(self, backoff: Backoff, progress: int, exc: Exception) -> None:
        """Wait before reconnecting; ``SubscriptionError`` once the outage is too long."""
        if backoff.failed(progress) > self.reconnect_for:
            raise SubscriptionError(
                str(self.cursor), f"no server for {self.reconnect_for:.0f}s: {exc}"
            ) from exc
        await self.stopped.wait(backoff.next_delay())
        await self._raw.refresh()  # a cluster node went away: re-read the slot map

    async def _catch_up_round(self, partitions: Sequence[int]) -> list[FollowedPage]:
        return [await self._page(p, self.cursor.position(p)) for p in partitions]

    async def _page(self, partition: int, after: int) -> FollowedPage:
        log = self.keys.log(partition)
        raw = self._raw.for_key(log)
        try:
            command = ("XRANGE", log, f"(0-{after}", "+", "COUNT", self.page_size)
            (entries,) = await send_batch(raw, [command])
        except redis.ResponseError as exc:
            await raise_if_wrong_type(exc, raw, {log: "stream"})
            raise
        return await self._resolved(partition, after, entries)

    async def _wait_live(self) -> list[FollowedPage]:
        if self.wake is not None:
            return await self._poll_live()
        streams = {
            self.keys.log(p): f"0-{self.cursor.position(p)}" for p in range(self.keys.partitions)
        }
        reply = await self.client.xread(streams, count=self.page_size, block=self.block_ms)  # type: ignore[arg-type]
        items = reply.items() if isinstance(reply, dict) else (reply or [])
        partition_of_log = {self.keys.log(p): p for p in range(self.keys.partitions)}
        pages = []
        for raw_key, raw_entries in items:
            key = raw_key.decode() if isinstance(raw_key, bytes) else raw_key
            entries = raw_entries
            if raw_entries and isinstance(raw_entries[0], list):
                entries = raw_entries[0]  # RESP3 wraps each stream's entries once more
            partition = partition_of_log[key]
            pages.append(await self._resolved(partition, self.cursor.position(partition), entries))
        return pages

    async def _poll_live(self) -> list[FollowedPage]:
        # On a cluster one XREAD cannot wait on logs of several slots: poll every log from
        # its cursor, and when all are empty sleep until a Pub/Sub hint (or block_ms).
        # The hint only wakes the reader up: a lost one costs latency, never an event.
        round_ = await self._catch_up_round(range(self.keys.partitions))
        pages = [page for page in round_ if page.scanned]
        if not pages and self.wake is not None:
            await self.wake(self.block_ms / 1000)
        return pages

    async def _resolved(self, partition: int, after: int, entries: list[Any]) -> FollowedPage:
        if not entries:
            return FollowedPage(partition, (), after, 0)
        pointers = self._pointers(partition, entries)
        try:
            events = await fetch_events(self._raw, pointers)
        except redis.ResponseError as exc:
            await raise_refused_fetch(exc, self._raw, pointers)
        return FollowedPage(partition, tuple(events), version_of_id(entries[-1][0]), len(entries))

    def _pointers(self, partition: int, entries: list[Any]) -> list[Pointer]:
        """A log page's pointers that pass the filters."""
        return parse_pointers(
            self.keys,
            partition,
            entries,
            event_types=self.event_types,
            aggregate_types=self.aggregate_types,
        )

    async def _retrying(self, fetch: Attempt[T]) -> T | None:
        """Run ``fetch``, reconnecting with jittered backoff; ``None`` once stopped."""
        backoff = Backoff()
        while not self.stopped.is_set():
            try:
                return await fetch()
            except self._raw.retryable as exc:
                await self._back_off(backoff, 0, exc)
        return None


async def fetch_events(raw: AsyncRawClients, pointers: Sequence[Pointer]) -> list[RecordedEvent]:
    """The events behind ``pointers`` (one partition), in their order, in one round trip."""
    if not pointers:
        return []
    call = fetch_call(pointers)
    return parse_fetched(call, await send_batch(raw.for_key(call.key), call.commands))
