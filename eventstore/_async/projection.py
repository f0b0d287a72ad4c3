# unasync: generates the sync module of the same name
"""``AsyncProjection``: a read model kept in Redis, fed by a catch-up reading of the logs.

::

    balances = AsyncProjection(store, "balances", version=1)

    @balances.on(Deposited)
    async def _deposited(event: Deposited, ctx: AsyncProjectionContext) -> None:
        ctx.pipe.hincrby(ctx.key("by_account"), ctx.record.aggregate_id, event.amount)

    balances.start()                       # in the background (or run() in the foreground)
    await balances.wait_until_caught_up(5.0)
    await store.client.hget(await balances.active_key("by_account"), "acc-1")

Each page of events is applied as ONE Lua script holding the handlers' writes and the
projection's checkpoint (the field ``projection:<name>:v<version>`` of each partition's
``{ns:pN}:ckpt`` hash, which is also what the safe trim point of the logs reads). Model
and checkpoint therefore move together: a projection killed at any moment resumes where
its model is, and each event takes effect once (see ``eventstore._async.projection_commit``).

Each commit checks the version's lease key in the same script: starting a runner takes the
version over, and a runner that lost it stops with ``ProjectionTakenOver`` before committing
anything, so two runners never both apply an event. Recording a failure is guarded the same
way (a MULTI/EXEC that WATCHes the lease).

A handler that raises stops the projection with a ``ProjectionError`` naming the event;
the writes of the events before it are committed with their checkpoint, the failed event
is not skipped. The failure is also recorded in Redis (``last_error()``, read by
``eventstore projections status`` from any process) until a commit takes the projection
past the failed event. Blue/green: run ``version=2`` next to version 1 (its keys and checkpoint
are its own), ``promote()`` it once caught up, then ``retire()`` version 1.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection
from typing import TYPE_CHECKING, Self, TypeVar, cast

import redis.asyncio as redis

from aggregates import DomainEvent
from eventstore._async.clients import load_script
from eventstore._async.connections import close_dedicated, dedicated_client
from eventstore._async.follower import AsyncLogFollower
from eventstore._async.io import AsyncBackground, AsyncEvent
from eventstore._async.lease import AsyncLease
from eventstore._async.projection_commit import AsyncPageCommits, AsyncProjectionContext
from eventstore._async.shards import RETRYABLE
from eventstore._core.backoff import Backoff
from eventstore._core.checkpoint import Checkpoint
from eventstore._core.codec import version_of_id
from eventstore._core.log import FollowedPage
from eventstore._core.notifications import LiveSelection
from eventstore._redis.permissions import raise_if_denied

if TYPE_CHECKING:
    from eventstore._async.live import AsyncLiveFeed
    from eventstore._async.store import AsyncEventStore

__all__ = ["AsyncProjection", "AsyncProjectionContext"]

E = TypeVar("E", bound=DomainEvent)
Handler = Callable[[E, AsyncProjectionContext], Awaitable[None]]


class AsyncProjection(AsyncPageCommits):
    """A named, versioned read model built by handlers per event type.

    ``page_size`` events at most go into one commit. ``aggregate_types`` narrows what is
    read. See the module docstring for an example.
    """

    def __init__(
        self,
        store: AsyncEventStore,
        name: str,
        *,
        version: int = 1,
        aggregate_types: Collection[str] | None = None,
        page_size: int = 200,
        block_ms: int = 1000,
        reconnect_for: float = 60.0,
    ) -> None:
        super().__init__(store, name, version)
        self.aggregate_types = aggregate_types
        self.page_size = page_size
        self.block_ms = block_ms
        self.reconnect_for = reconnect_for
        self.error: BaseException | None = None
        self._handlers = {}
        self._stopped = AsyncEvent()
        self._moved = AsyncEvent()
        self._committed = Checkpoint.start(store.partitions)
        self._background: AsyncBackground | None = None
        self._lease = AsyncLease(store.client, self.lease_key, name, version)
        self._failed = None
        self._commits = 0
        # on a cluster the commit may write its own slot only: a key elsewhere is refused
        # (Redis 7.0+; an older cluster also lets it write other slots of the same node)
        strict = store.keys.clustered and all(info.has_script_flags for info in store.servers)
        self._commit_script = load_script(store.client, "projection_commit", shebang=strict)
        self._fail_script = load_script(store.client, "projection_fail")

    # -- declaring ------------------------------------------------------------------------

    def on(self, event_class: type[E]) -> Callable[[Handler[E]], Handler[E]]:
        """Register the decorated function as the handler of ``event_class``."""

        def register(handler: Handler[E]) -> Handler[E]:
            if event_class.event_type in self._handlers:
                raise ValueError(
                    f"projection {self.name!r} already handles {event_class.event_type}"
                )
            self._handlers[event_class.event_type] = handler
            return handler

        return register

    # -- running --------------------------------------------------------------------------

    async def run(self, *, until_caught_up: bool = False) -> None:
        """Apply events here until ``stop()`` (or once caught up, if asked).

        Reconnects with backoff after a lost connection, resuming from the committed
        checkpoint; a handler error raises ``ProjectionError``. Starting a runner takes the
        projection version over: one that was already running raises
        ``ProjectionTakenOver`` at its next commit, without committing anything.
        """
        # a fresh token per run, on the version's key as it is now (the CLI's rebuild
        # sets the version after building the projection)
        self._lease = AsyncLease(self.store.client, self.lease_key, self.name, self.version)
        backoff = Backoff()
        while not self._stopped.is_set():
            try:
                await self._follow(live=not until_caught_up)
                return
            except RETRYABLE:
                # reconnect_for bounds one outage: a commit since the last failure means
                # the link came back, so this failure starts a new outage (and backoff).
                if backoff.failed(self._commits) > self.reconnect_for:
                    raise
                await self._stopped.wait(backoff.next_delay())
            except redis.ResponseError as exc:
                # an ACL refusal of the lease, checkpoint or log reads, named as elsewhere
                raise_if_denied(exc, self.store.client)
                raise

    def start(self) -> Self:
        """Run in the background: a thread, or on the asyncio front a task of the running
        loop; a failure is kept in ``error``."""
        if self.running:
            raise RuntimeError(f"projection {self.name!r} is already running")
        self._stopped.clear()
        self.error = None
        self._background = AsyncBackground(
            self._run_in_background, name=f"projection-{self.name}-v{self.version}"
        )
        self._background.start()
        return self

    async def stop(self, timeout: float | None = 30.0) -> None:
        """Stop (thread-safe); waits for the background run, if any, to end."""
        self._stopped.set()
        if self._background is not None:
            await self._background.join(timeout)

    @property
    def running(self) -> bool:
        """True while the background run goes on."""
        return self._background is not None and self._background.alive()

    async def wait_until_caught_up(self, timeout: float | None = None) -> bool:
        """Wait until every event appended before this call is applied; False on timeout.

        Raises the ``ProjectionError`` that stopped the background run, if one did.
        """
        head = await self._last_entries()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            moved = self._moved  # taken before the check: a move after it sets this one
            if self.error is not None:
                raise self.error
            if _reached(self._committed, head):
                return True
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            await moved.wait(remaining if remaining is not None else 1.0)

    async def _last_entries(self) -> Checkpoint:
        """The last log entry of each partition at or below the current head.

        Not the head itself: entries a trim removed can never be applied, and a version
        started after a trim that emptied a log would otherwise never be caught up.
        """
        keys, head = self.store.keys, await self.store.head()
        async with self.store.client.pipeline(transaction=False) as pipe:
            for partition, position in enumerate(head.positions):
                pipe.xrevrange(keys.log(partition), f"0-{position}", "-", count=1)
            replies = await pipe.execute()
        return Checkpoint(tuple(version_of_id(last[0][0]) if last else 0 for last in replies))

    async def __aenter__(self) -> Self:
        return self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _run_in_background(self) -> None:
        try:
            await self.run()
        except Exception as exc:  # noqa: BLE001 - kept for wait_until_caught_up and the owner
            self.error = exc
            self._wake_waiters()

    async def _follow(self, *, live: bool) -> None:
        store = self.store
        hints: AsyncLiveFeed | None = None
        dedicated: redis.Redis | None = None
        try:
            await self._lease.take()
            self._set_committed(await self.checkpoint())
            if self.clustered:
                # registered for the trim point before reading anything
                await self._register_floors(dict(enumerate(self._committed.positions)))
            await self._load_failure()
            # On a cluster the reader polls with the store's client (nothing blocks) and
            # sleeps on Pub/Sub hints; elsewhere it blocks in XREAD on its own connection.
            if self.clustered:
                client = store.client
                if live:
                    from eventstore._async.live import AsyncLiveFeed

                    selection = LiveSelection.of(self.aggregate_types, None, None)
                    hints = AsyncLiveFeed(store, selection)
                    await hints.open()
            else:
                client = dedicated = dedicated_client(
                    store.client, block_seconds=self.block_ms / 1000
                )
            follower = AsyncLogFollower(
                store.keys,
                client,
                self._committed,
                event_types=frozenset(self._handlers),
                aggregate_types=self.aggregate_types,
                page_size=self.page_size,
                block_ms=self.block_ms,
                live=live,
                reconnect_for=self.reconnect_for,
                stopped=self._stopped,
                wake=hints.wait_for_any if hints is not None else None,
            )
            # closed here, not when collected: a failed page leaves the reads behind it
            # (read ahead on this connection) unfinished
            pages = cast(AsyncGenerator[FollowedPage, None], follower.pages())
            async with contextlib.aclosing(pages):
                async for page in pages:
                    await self._apply(page)
        finally:
            if hints is not None:
                await hints.aclose()
            if dedicated is not None:
                await close_dedicated(dedicated)

    async def _load_failure(self) -> None:
        failure = await self.last_error()
        if failure is None:
            self._failed = None
        elif self._committed.position(failure.partition) >= failure.position:
            await self.store.client.delete(self.error_key)  # passed meanwhile (e.g. by hand)
            self._failed = None
        else:
            self._failed = (failure.partition, failure.position)


def _reached(checkpoint: Checkpoint, head: Checkpoint) -> bool:
    return all(c >= h for c, h in zip(checkpoint.positions, head.positions, strict=True))
