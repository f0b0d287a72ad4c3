# unasync: generates the sync module of the same name
"""``AsyncCatchUpSubscription``: every event after a checkpoint, then new ones as they come.

::

    async with store.subscribe(after=saved, event_types=["Deposited"]) as sub:
        async for recorded in sub:
            handle(recorded)
            saved = str(sub.checkpoint)   # store it wherever; resume with after=saved

Delivery is at least once across crashes of the consumer (it resumes from what it
stored) and exactly once within one resume chain: the subscription itself never repeats
or skips an event, even across reconnects.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Collection
from typing import TYPE_CHECKING, Self

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster

from eventstore._async.connections import close_dedicated, dedicated_client
from eventstore._async.follower import AsyncLogFollower
from eventstore._async.io import AsyncEvent
from eventstore._core.checkpoint import After, Checkpoint
from eventstore._core.notifications import LiveSelection
from eventstore._core.records import RecordedEvent

if TYPE_CHECKING:
    from eventstore._async.live import AsyncLiveFeed
    from eventstore._async.store import AsyncEventStore

__all__ = ["AsyncCatchUpSubscription"]


class AsyncCatchUpSubscription:
    """An iterator of ``RecordedEvent``: the history after a checkpoint, then live events.

    Make one with ``store.subscribe(...)`` and use it in a ``with`` block (it holds its own
    connection). ``caught_up`` turns true once the history is drained; ``checkpoint`` is
    the position after the last event handed out (filtered-out entries included), which
    ``after=`` accepts; ``stop()`` may be called from anywhere and ends the iteration
    within one block time (``block_ms``).
    """

    def __init__(
        self,
        store: AsyncEventStore,
        after: After,
        *,
        event_types: Collection[str] | None = None,
        aggregate_types: Collection[str] | None = None,
        page_size: int = 500,
        block_ms: int = 1000,
        reconnect_for: float = 60.0,
    ) -> None:
        if page_size < 1 or block_ms < 1:
            raise ValueError(f"page_size and block_ms must be >= 1, got {page_size}, {block_ms}")
        self._store = store
        self._after = after
        self._event_types = event_types
        self._aggregate_types = aggregate_types
        self._page_size = page_size
        self._block_ms = block_ms
        self._reconnect_for = reconnect_for
        self._stopped = AsyncEvent()
        self._caught_up = AsyncEvent()
        self._hints: AsyncLiveFeed | None = None
        self._client: redis.Redis | None = None
        self._follower: AsyncLogFollower | None = None
        self._checkpoint = Checkpoint.coerce(None, store.partitions)
        # the last event handed out, not yet folded into _checkpoint: a Checkpoint per
        # event would cost more than decoding it (it is folded when read, or per page)
        self._delivered: RecordedEvent | None = None
        self._events: AsyncGenerator[RecordedEvent, None] | None = None

    async def open(self) -> None:
        """Read where to start (``FROM_NOW``: the head now) and take a connection.

        Done on entering the ``with`` block (or on first iteration); idempotent.
        """
        if self._follower is not None:
            return
        store = self._store
        after = await store.checkpoint(self._after)
        # On a cluster the reader polls with the store's client (nothing blocks) and sleeps
        # on Pub/Sub hints; elsewhere it blocks in XREAD on a connection of its own.
        if isinstance(store.client, RedisCluster):
            from eventstore._async.live import AsyncLiveFeed

            client = store.client
            self._hints = AsyncLiveFeed(store, LiveSelection.of(self._aggregate_types, None, None))
            await self._hints.open()
        else:
            client = self._client = dedicated_client(
                store.client, block_seconds=self._block_ms / 1000
            )
        self._follower = AsyncLogFollower(
            store.keys,
            client,
            after,
            event_types=self._event_types,
            aggregate_types=self._aggregate_types,
            page_size=self._page_size,
            block_ms=self._block_ms,
            reconnect_for=self._reconnect_for,
            stopped=self._stopped,
            caught_up=self._caught_up,
            wake=self._hints.wait_for_any if self._hints is not None else None,
        )
        self._checkpoint = after

    @property
    def checkpoint(self) -> Checkpoint:
        """Resume point: after the last event delivered (or skipped by the filters)."""
        delivered = self._delivered  # read once: the iterating thread may move on
        if delivered is None:
            return self._checkpoint
        return self._checkpoint.advance(delivered.partition, delivered.position)

    @property
    def caught_up(self) -> bool:
        """True once every event that existed at the start has been delivered."""
        return self._caught_up.is_set()

    async def wait_until_caught_up(self, timeout: float | None = None) -> bool:
        """Wait until ``caught_up`` (another task iterates); False on timeout."""
        return await self._caught_up.wait(timeout)

    @property
    def stopped(self) -> bool:
        """True once ``stop()`` or ``close()`` was called."""
        return self._stopped.is_set()

    def stop(self) -> None:
        """End the iteration (from anywhere): a blocked read returns within ``block_ms``."""
        self._stopped.set()

    async def aclose(self) -> None:
        """Stop and release the connection (from the iterating task, or after it)."""
        self.stop()
        if self._events is not None:
            # still running in another task (or thread): it ends at its next event
            with contextlib.suppress(RuntimeError, ValueError):
                await self._events.aclose()
        if self._hints is not None:
            await self._hints.aclose()
            self._hints = None
        if self._client is not None:
            client, self._client = self._client, None
            await close_dedicated(client)

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> RecordedEvent:
        if self._events is None:
            await self.open()
            self._events = self._deliver()
        return await anext(self._events)

    async def _deliver(self) -> AsyncGenerator[RecordedEvent, None]:
        assert self._follower is not None  # opened by __anext__
        async for page in self._follower.pages():
            for recorded in page.events:
                if self._stopped.is_set():
                    return
                self._delivered = recorded
                yield recorded
            # never backwards: a reader between these two lines gets an earlier position
            self._checkpoint = self._checkpoint.advance(page.partition, page.last_position)
            self._delivered = None
