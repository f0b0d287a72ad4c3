"""One Pub/Sub connection per server for every live feed of a store: the asyncio backend.

The twin of ``eventstore._redis.hub`` (a thread there, tasks here), under the same names.
All the live feeds of one ``AsyncEventStore`` share one ``PubSub`` (on a sharded cluster
redis-py's ``ClusterPubSub``: one connection per node owning a channel), read by one
task per connection. What to subscribe to, and which feed gets which notification, is
decided by the I/O-free ``LiveRoutes`` and ``SubscriptionLedger``
(``eventstore._core.liveroutes``); this module sends the requests, reads, and runs the
tasks.

Requests are sent under a lock by whichever feed changed what is needed, in a task of
their own (shielded), so cancelling a feed never leaves a request half-written on the
shared connection. A feed cancelled while it waits for its confirmation just leaves.

Reconnects: redis-py reconnects and subscribes again to everything it was asked for;
what was published meanwhile is lost, which a hint allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Coroutine, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from redis.exceptions import ResponseError

from eventstore._async.io import AsyncEvent
from eventstore._async.shards import RETRYABLE
from eventstore._core.backoff import Backoff
from eventstore._core.liveroutes import (
    CHANNEL,
    PATTERN,
    LiveInbox,
    LiveRoutes,
    SubscriptionLedger,
    Target,
)
from eventstore._core.replies import text
from eventstore._redis.permissions import raise_if_denied

if TYPE_CHECKING:
    from eventstore._async.store import AsyncEventStore

__all__ = ["CONFIRM_SECONDS", "AsyncLiveHub", "join_live"]

T = TypeVar("T")

CONFIRM_SECONDS = 10.0
UNSUBSCRIBE_SECONDS = 2.0  # a leaving feed waits this long for its unsubscribe, at most
READ_SECONDS = 5.0  # a read returns this often, so redis-py's health check runs
# A node's subscribe requests wait for its reader's bounded read to end (redis-py 8.2's
# cluster Pub/Sub serialises them on one lock per node), so the sharded readers read in
# short slices: a new type's subscription goes out within one slice per channel.
NODE_READ_SECONDS = 0.1

DATA = frozenset({"message", "pmessage", "smessage"})
CONFIRMATIONS = {
    "subscribe": CHANNEL,
    "unsubscribe": CHANNEL,
    "ssubscribe": CHANNEL,
    "sunsubscribe": CHANNEL,
    "psubscribe": PATTERN,
    "punsubscribe": PATTERN,
}

_HUBS: weakref.WeakKeyDictionary[AsyncEventStore, AsyncLiveHub] = weakref.WeakKeyDictionary()


async def join_live(
    store: AsyncEventStore, inbox: LiveInbox, known_types: Iterable[str] = ()
) -> AsyncLiveHub:
    """Add ``inbox`` to the store's hub (made on first use), once its channels are
    subscribed; the hub to ``leave`` later."""
    hub = _HUBS.get(store)
    if hub is None:
        hub = _HUBS[store] = AsyncLiveHub(store)
    await hub.join(inbox, known_types)
    return hub


class AsyncLiveHub:
    """The shared subscription of one store's live feeds (see the module docstring)."""

    def __init__(self, store: AsyncEventStore) -> None:
        self._store = store
        self._client: Any = store.client
        self._sharded = store.live_channels.sharded
        self.routes = LiveRoutes(store.live_channels)
        self._ledger: SubscriptionLedger[AsyncEvent] = SubscriptionLedger(self.routes.wanted)
        self._pubsub: Any = store.client.pubsub()
        self._lock = asyncio.Lock()
        self._readers: dict[str, asyncio.Task[None]] = {}
        self._closed = False
        self._refusals: dict[AsyncEvent, ResponseError] = {}

    async def join(self, inbox: LiveInbox, known_types: Iterable[str] = ()) -> None:
        """Route to ``inbox`` from now on; returns once the server confirmed its channels
        (``TimeoutError`` after ``CONFIRM_SECONDS``)."""
        self._ledger.touch(self.routes.join(inbox, known_types))
        try:
            await self._settle(self.routes.targets_of(inbox), CONFIRM_SECONDS, strict=True)
        except BaseException:
            await self.leave(inbox)
            raise

    async def discover(self, types: Iterable[str]) -> None:
        """Aggregate types found in the namespace (sharded feeds of every type follow them)."""
        self._ledger.touch(self.routes.discover(types))
        await self._settle((), 0, strict=False)

    async def leave(self, inbox: LiveInbox) -> None:
        """Route nothing more to ``inbox``; unsubscribe what no feed needs any more (the
        connection itself goes with the last feed)."""
        if inbox not in self.routes:
            return
        dropped = self.routes.leave(inbox)
        self._ledger.touch(dropped)
        if not self.routes:
            self._closed = True
            if _HUBS.get(self._store) is self:
                del _HUBS[self._store]
            await _shielded(self._close())
            return
        await self._settle(dropped, UNSUBSCRIBE_SECONDS, strict=False)

    async def _settle(self, targets: Sequence[Target], timeout: float, *, strict: bool) -> None:
        """Send what is due and wait until ``targets`` are confirmed (``strict``: or raise)."""
        done = AsyncEvent()
        waiting = self._ledger.wait(targets, done)
        try:
            if self._ledger.dirty:
                await _shielded(self._flush())
            if waiting and not await done.wait(timeout) and strict:
                raise TimeoutError(
                    f"the server did not confirm the live subscription in {timeout:.0f} s"
                )
            refusal = self._refusals.pop(done, None)
            if refusal is not None and strict:
                # the refusal names no channel: name it when there is only one
                named = targets[0][1] if len(targets) == 1 else ""
                raise_if_denied(refusal, self._client, channel=named)
                raise refusal
        except RETRYABLE:
            if strict:
                raise
            # a leaving feed: its channels stay subscribed until the next request goes out
        finally:
            self._refusals.pop(done, None)
            if waiting and not done.is_set():
                self._ledger.forget(done)

    async def _flush(self) -> None:
        async with self._lock:
            if self._closed:
                return
            requests = self._ledger.requests()
            for waiter in requests.released:
                waiter.set()
            try:
                await self._send(requests.subscribe, requests.unsubscribe)
            except BaseException:
                self._ledger.unsent(requests.subscribe, requests.unsubscribe)
                raise
            self._start_readers()

    async def _send(self, subscribe: list[Target], unsubscribe: list[Target]) -> None:
        pubsub = self._pubsub
        channels = [name for kind, name in subscribe if kind == CHANNEL]
        patterns = [name for kind, name in subscribe if kind == PATTERN]
        gone = [name for kind, name in unsubscribe if kind == CHANNEL]
        gone_patterns = [name for kind, name in unsubscribe if kind == PATTERN]
        if self._sharded:
            if channels:
                await pubsub.ssubscribe(*channels)
            if gone:
                await pubsub.sunsubscribe(*gone)
            return
        if patterns:
            await pubsub.psubscribe(*patterns)
        if channels:
            await pubsub.subscribe(*channels)
        if gone:  # never without arguments: that would unsubscribe from everything
            await pubsub.unsubscribe(*gone)
        if gone_patterns:
            await pubsub.punsubscribe(*gone_patterns)

    def _start_readers(self) -> None:
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        if not self._sharded:
            if "" not in self._readers and self._pubsub.connection is not None:
                self._readers[""] = loop.create_task(self._read_classic())
            return
        for name in list(self._pubsub.node_pubsub_mapping):
            if name not in self._readers:
                self._readers[name] = loop.create_task(self._read_node(name))

    async def _read_classic(self) -> None:
        backoff = Backoff()
        while True:
            try:
                message = await self._pubsub.get_message(timeout=READ_SECONDS)
            except RETRYABLE:
                # redis-py reconnects (and re-subscribes) on the next read
                await asyncio.sleep(backoff.next_delay())
                continue
            except ResponseError as refusal:  # the reply to a request, not a message
                self._refuse(refusal)
                continue
            backoff.reset()
            if message is not None:
                self._handle(message)

    async def _read_node(self, name: str) -> None:
        """Read one node's connection until it holds no shard channel any more."""
        backoff = Backoff()
        try:
            while (node_pubsub := self._pubsub.node_pubsub_mapping.get(name)) is not None:
                node = self._client.get_node(node_name=name)
                if node is None:
                    return  # the node left the cluster; redis-py moves its channels
                if node_pubsub.connection is None:
                    await asyncio.sleep(backoff.next_delay())  # its subscribe did not go out
                    continue
                try:
                    message = await self._pubsub.get_sharded_message(
                        target_node=node, timeout=NODE_READ_SECONDS
                    )
                except RETRYABLE:
                    await asyncio.sleep(backoff.next_delay())
                    continue
                except ResponseError as refusal:
                    self._refuse(refusal)
                    continue
                backoff.reset()
                if message is not None:
                    self._handle(message)
                # redis-py may have moved channels to a node connection of its own
                # (slots that moved): give it a reader too
                self._start_readers()
        finally:
            # no await since the loop's last look at the mapping: a subscribe that made
            # a new connection for this node after it finds no reader and starts one
            if self._readers.get(name) is asyncio.current_task():
                del self._readers[name]

    def _refuse(self, refusal: ResponseError) -> None:
        """An error reply to a request (an ACL refusal of a channel): its waiters fail."""
        for waiter in self._ledger.refused():
            self._refusals[waiter] = refusal
            waiter.set()

    def _handle(self, message: dict[str, Any]) -> None:
        kind = text(message["type"])
        if kind in DATA:
            self.routes.route(kind, text(message["channel"]), message["data"])
            return
        target_kind = CONFIRMATIONS.get(kind)
        if target_kind is not None:
            for waiter in self._ledger.confirmed((target_kind, text(message["channel"]))):
                waiter.set()

    async def _close(self) -> None:
        async with self._lock:  # a request being written goes out whole first
            readers = list(self._readers.values())
            self._readers.clear()
            for task in readers:
                task.cancel()
            if readers:
                await asyncio.wait(readers)
            with contextlib.suppress(*RETRYABLE):
                await self._pubsub.aclose()


async def _shielded(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to its end in a task of its own, even if the caller is cancelled."""
    task = asyncio.ensure_future(coroutine)
    task.add_done_callback(_retrieve)
    return await asyncio.shield(task)


def _retrieve(task: asyncio.Future[Any]) -> None:
    # a caller cancelled while the task ran never reads its outcome: read it here, so
    # asyncio does not log it as never retrieved
    if not task.cancelled():
        task.exception()
