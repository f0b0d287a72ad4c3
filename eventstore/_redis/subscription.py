"""``CatchUpSubscription``: every event after a checkpoint, then new ones as they come.

::

    with store.subscribe(after=saved, event_types=["Deposited"]) as sub:
        for recorded in sub:
            handle(recorded)
            saved = str(sub.checkpoint)   # store it wherever; resume with after=saved

Delivery is at least once across crashes of the consumer (it resumes from what it
stored) and exactly once within one resume chain: the subscription itself never repeats
or skips an event, even across reconnects.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Generator
from typing import TYPE_CHECKING, Self

import redis
from redis.cluster import RedisCluster

from eventstore._core.checkpoint import Checkpoint
from eventstore._core.notifications import LiveSelection
from eventstore._core.records import RecordedEvent
from eventstore._redis.connections import close_dedicated, dedicated_client
from eventstore._redis.follower import LogFollower
from eventstore._redis.live import LiveFeed

if TYPE_CHECKING:
    from eventstore._redis.store import EventStore

__all__ = ["CatchUpSubscription"]


class CatchUpSubscription:
    """An iterator of ``RecordedEvent``: the history after a checkpoint, then live events.

    Make one with ``store.subscribe(...)`` and use it in a ``with`` block (it holds its own
    connection). ``caught_up`` turns true once the history is drained; ``checkpoint`` is
    the position after the last event handed out (filtered-out entries included), which
    ``after=`` accepts; ``stop()`` may be called from any thread and ends the iteration
    within one block time (``block_ms``).
    """

    def __init__(
        self,
        store: EventStore,
        after: Checkpoint,
        *,
        event_types: Collection[str] | None = None,
        aggregate_types: Collection[str] | None = None,
        page_size: int = 500,
        block_ms: int = 1000,
        reconnect_for: float = 60.0,
    ) -> None:
        self._stopped = threading.Event()
        # On a cluster the reader polls with the store's client (nothing blocks) and sleeps
        # on Pub/Sub hints; elsewhere it blocks in XREAD on a connection of its own.
        self._hints: LiveFeed | None = None
        self._client: redis.Redis
        self._owns_client: bool
        if isinstance(store.client, RedisCluster):
            self._client, self._owns_client = store.client, False
            self._hints = LiveFeed(store, LiveSelection.of(aggregate_types, None, None))
        else:
            self._client = dedicated_client(store.client, block_seconds=block_ms / 1000)
            self._owns_client = True
        self._follower = LogFollower(
            store.keys,
            self._client,
            after,
            event_types=event_types,
            aggregate_types=aggregate_types,
            page_size=page_size,
            block_ms=block_ms,
            reconnect_for=reconnect_for,
            stopped=self._stopped,
            wake=self._hints.wait_for_any if self._hints is not None else None,
        )
        self._checkpoint = after
        # the last event handed out, not yet folded into _checkpoint: a Checkpoint per
        # event would cost more than decoding it (it is folded when read, or per page)
        self._delivered: RecordedEvent | None = None
        self._events: Generator[RecordedEvent, None, None] | None = None

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
        return self._follower.caught_up.is_set()

    def wait_until_caught_up(self, timeout: float | None = None) -> bool:
        """Block until ``caught_up`` (another thread iterates); False on timeout."""
        return self._follower.caught_up.wait(timeout)

    @property
    def stopped(self) -> bool:
        """True once ``stop()`` or ``close()`` was called."""
        return self._stopped.is_set()

    def stop(self) -> None:
        """End the iteration (thread-safe): a blocked read returns within ``block_ms``."""
        self._stopped.set()

    def close(self) -> None:
        """Stop and release the connection (call from the iterating thread, or after it)."""
        self.stop()
        if self._events is not None:
            self._events.close()
        if self._hints is not None:
            self._hints.close()
        if self._owns_client:
            close_dedicated(self._client)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> RecordedEvent:
        if self._events is None:
            self._events = self._deliver()
        return next(self._events)

    def _deliver(self) -> Generator[RecordedEvent, None, None]:
        for page in self._follower.pages():
            for recorded in page.events:
                if self._stopped.is_set():
                    return
                self._delivered = recorded
                yield recorded
            # never backwards: a reader between these two lines gets an earlier position
            self._checkpoint = self._checkpoint.advance(page.partition, page.last_position)
            self._delivered = None
