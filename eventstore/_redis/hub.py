"""One Pub/Sub connection per server for every live feed of a store: the threads backend.

The twin of ``eventstore._async.hub`` (tasks there, a thread here), under the same names.
All the live feeds of one ``EventStore`` share one ``PubSub`` (on a sharded cluster
redis-py's ``ClusterPubSub``: one connection per node owning a channel), read by one
daemon thread. What to subscribe to, and which feed gets which notification, is decided
by the I/O-free ``LiveRoutes`` and ``SubscriptionLedger`` (``eventstore._core.liveroutes``);
this module sends the requests, reads, and runs the thread.

The reader never blocks in redis-py while holding the hub's lock: it takes every message
already there (``get_message(timeout=0)``, under the lock, so requests from the feeds'
threads never interleave with a read or a reconnect), then waits outside it in one
``select`` on every connection's socket and on a wake-up socket the feeds poke when they
add a connection. That also spares a sharded reader redis-py's ``get_sharded_message(t)``,
which waits ``t`` on each node in turn.

Reconnects: redis-py reconnects and subscribes again to everything it was asked for;
what was published meanwhile is lost, which a hint allows.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import weakref
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from redis.exceptions import ResponseError

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
from eventstore._redis.shards import RETRYABLE

if TYPE_CHECKING:
    from eventstore._redis.store import EventStore

__all__ = ["CONFIRM_SECONDS", "LiveHub", "join_live"]

CONFIRM_SECONDS = 10.0
UNSUBSCRIBE_SECONDS = 2.0  # a leaving feed waits this long for its unsubscribe, at most
READ_SECONDS = 5.0  # the reader looks this often, so redis-py's health check runs
RECONNECT_SECONDS = 0.05  # ... and this often while a subscribed connection is down
BATCH = 500  # messages handled per turn of the lock: a feed opening waits no longer

DATA = frozenset({"message", "pmessage", "smessage"})
CONFIRMATIONS = {
    "subscribe": CHANNEL,
    "unsubscribe": CHANNEL,
    "ssubscribe": CHANNEL,
    "sunsubscribe": CHANNEL,
    "psubscribe": PATTERN,
    "punsubscribe": PATTERN,
}

_HUBS: weakref.WeakKeyDictionary[EventStore, LiveHub] = weakref.WeakKeyDictionary()
_HUBS_LOCK = threading.Lock()


def join_live(store: EventStore, inbox: LiveInbox, known_types: Iterable[str] = ()) -> LiveHub:
    """Add ``inbox`` to the store's hub (made on first use), once its channels are
    subscribed; the hub to ``leave`` later."""
    while True:
        with _HUBS_LOCK:
            hub = _HUBS.get(store)
            if hub is None:
                hub = _HUBS[store] = LiveHub(store)
        if hub.join(inbox, known_types):
            return hub
        # its last feed left while we looked it up: it is closed, and out of the registry


class LiveHub:
    """The shared subscription of one store's live feeds (see the module docstring)."""

    def __init__(self, store: EventStore) -> None:
        self._store = store
        self._client: Any = store.client
        self._sharded = store.live_channels.sharded
        self.routes = LiveRoutes(store.live_channels)
        self._ledger: SubscriptionLedger[threading.Event] = SubscriptionLedger(self.routes.wanted)
        self._pubsub: Any = store.client.pubsub()  # type: ignore[no-untyped-call, unused-ignore]
        self._lock = threading.RLock()
        self._closing = threading.Event()
        self._refusals: dict[threading.Event, ResponseError] = {}
        self._reader: threading.Thread | None = None
        self._wake_in, self._wake_out = socket.socketpair()
        self._wake_in.setblocking(False)
        self._wake_out.setblocking(False)

    def join(self, inbox: LiveInbox, known_types: Iterable[str] = ()) -> bool:
        """Route to ``inbox`` from now on; returns once the server confirmed its channels
        (``TimeoutError`` after ``CONFIRM_SECONDS``). False if the hub closed meanwhile."""
        with self._lock:
            if self._closing.is_set():
                return False
            self._ledger.touch(self.routes.join(inbox, known_types))
            targets = self.routes.targets_of(inbox)
        try:
            self._settle(targets, CONFIRM_SECONDS, strict=True)
        except BaseException:
            self.leave(inbox)
            raise
        return True

    def discover(self, types: Iterable[str]) -> None:
        """Aggregate types found in the namespace (sharded feeds of every type follow them)."""
        with self._lock:
            if self._closing.is_set():
                return
            self._ledger.touch(self.routes.discover(types))
        self._settle((), 0, strict=False)

    def leave(self, inbox: LiveInbox) -> None:
        """Route nothing more to ``inbox``; unsubscribe what no feed needs any more (the
        connection itself goes with the last feed)."""
        with self._lock:
            if inbox not in self.routes:
                return
            dropped = self.routes.leave(inbox)
            self._ledger.touch(dropped)
            last = not self.routes
            if last:
                self._closing.set()
                with _HUBS_LOCK:
                    if _HUBS.get(self._store) is self:
                        del _HUBS[self._store]
                with contextlib.suppress(*RETRYABLE):
                    self._pubsub.close()
        if last:
            self._stop_reader()
            return
        self._settle(dropped, UNSUBSCRIBE_SECONDS, strict=False)

    def _settle(self, targets: Sequence[Target], timeout: float, *, strict: bool) -> None:
        """Send what is due and wait until ``targets`` are confirmed (``strict``: or raise)."""
        done = threading.Event()
        with self._lock:
            waiting = self._ledger.wait(targets, done)
        try:
            self._flush()
            if waiting and not done.wait(timeout) and strict:
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
                with self._lock:
                    self._ledger.forget(done)

    def _flush(self) -> None:
        with self._lock:
            if self._closing.is_set() or not self._ledger.dirty:
                return
            requests = self._ledger.requests()
            for waiter in requests.released:
                waiter.set()
            try:
                self._send(requests.subscribe, requests.unsubscribe)
            except BaseException:
                self._ledger.unsent(requests.subscribe, requests.unsubscribe)
                raise
            if self._reader is None:
                self._reader = threading.Thread(
                    target=self._read, name="eventstore-live", daemon=True
                )
                self._reader.start()
        self._poke()  # a new node connection: the reader adds its socket

    def _send(self, subscribe: list[Target], unsubscribe: list[Target]) -> None:
        pubsub = self._pubsub
        channels = [name for kind, name in subscribe if kind == CHANNEL]
        patterns = [name for kind, name in subscribe if kind == PATTERN]
        gone = [name for kind, name in unsubscribe if kind == CHANNEL]
        gone_patterns = [name for kind, name in unsubscribe if kind == PATTERN]
        if self._sharded:
            if channels:
                pubsub.ssubscribe(*channels)
            if gone:
                pubsub.sunsubscribe(*gone)
            return
        if patterns:
            pubsub.psubscribe(*patterns)
        if channels:
            pubsub.subscribe(*channels)
        if gone:  # never without arguments: that would unsubscribe from everything
            pubsub.unsubscribe(*gone)
        if gone_patterns:
            pubsub.punsubscribe(*gone_patterns)

    def _read(self) -> None:
        backoff = Backoff()
        while not self._closing.is_set():
            try:
                with self._lock:
                    if self._closing.is_set():
                        break
                    sockets = self._drain()
            except RETRYABLE:
                # redis-py reconnects (and re-subscribes) on the next read
                self._closing.wait(backoff.next_delay())
                continue
            except ResponseError as refusal:  # the reply to a request, not a message
                with self._lock:
                    self._refuse(refusal)
                continue
            backoff.reset()
            if sockets is not None:  # else more messages are there: look again at once
                self._wait_readable(*sockets)
        with contextlib.suppress(OSError):
            self._wake_in.close()
            self._wake_out.close()

    def _drain(self) -> tuple[list[Any], float] | None:
        """Handle the messages already there; then the sockets to wait on and for how
        long (None: there are more, look again)."""
        for _ in range(BATCH):
            if self._sharded:
                message = self._pubsub.get_sharded_message(timeout=0)
            else:
                message = self._pubsub.get_message(timeout=0)
            if message is None:
                return self._sockets()
            self._handle(message)
        return None

    def _sockets(self) -> tuple[list[Any], float]:
        """The sockets of the subscribed connections, and how long to wait on them: not
        long if one is down (the next look reconnects it, redis-py subscribes it again)."""
        pubsubs = (
            list(self._pubsub.node_pubsub_mapping.values()) if self._sharded else [self._pubsub]
        )
        sockets, timeout = [], READ_SECONDS
        for pubsub in pubsubs:
            if not pubsub.subscribed:
                continue  # nothing to read there (a feed's subscribe pokes us)
            connection = pubsub.connection
            if connection is None or connection._sock is None:
                timeout = RECONNECT_SECONDS
            else:
                sockets.append(connection._sock)
        return sockets, timeout

    def _wait_readable(self, sockets: list[Any], timeout: float) -> None:
        # a socket closed under us (reconnect, slot moved, hub closed): just look again
        with contextlib.suppress(OSError, ValueError):
            ready, _, _ = select.select([*sockets, self._wake_in], [], [], timeout)
            if self._wake_in in ready:
                self._wake_in.recv(4096)

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

    def _poke(self) -> None:
        with contextlib.suppress(OSError):  # closed, or already full of pokes
            self._wake_out.send(b"\0")

    def _stop_reader(self) -> None:
        self._poke()
        reader = self._reader
        if reader is None:
            with contextlib.suppress(OSError):
                self._wake_in.close()
                self._wake_out.close()
        elif reader is not threading.current_thread():
            reader.join(timeout=READ_SECONDS)
