"""Many live feeds on one subscription: who wants which notification, what to ask the server.

I/O free, shared by both fronts' hubs (``eventstore._async.hub``, ``eventstore._redis.hub``),
which own the connection and its reader (a task, a thread):

- ``LiveInbox``: one feed's bounded queue. The reader only ever appends to it (it never
  waits for a consumer); when it is full the notification is dropped and counted, and the
  consumer's next ``take`` raises ``LiveFeedFellBehind``. A slow feed costs the others and
  the reader nothing.
- ``LiveRoutes``: feeds indexed by (aggregate type, aggregate id), ``None`` standing for
  "any", so routing one notification is at most four dict lookups plus a put per matching
  feed, however many feeds are open; and how many feeds need each channel or pattern.
- ``SubscriptionLedger``: what the server was asked for per channel and what it confirmed,
  so a feed's ``open()`` returns once its channels are subscribed ("from now" is exact),
  and a channel is unsubscribed when the last feed that needed it leaves.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

import attrs

from eventstore._core.errors import LiveFeedFellBehind, StoredDataError
from eventstore._core.notifications import (
    LiveChannels,
    LiveNotification,
    LiveSelection,
    parse_notification,
)

__all__ = [
    "CHANNEL",
    "DEFAULT_MAX_QUEUE",
    "PATTERN",
    "LiveInbox",
    "LiveRoutes",
    "Requests",
    "SubscriptionLedger",
    "Target",
]

CHANNEL, PATTERN = "channel", "pattern"
Target = tuple[str, str]
"""What a connection subscribes to: ``(CHANNEL, name)`` (sharded on a sharded cluster) or
``(PATTERN, name)``."""

W = TypeVar("W")
_Key = tuple[str | None, str | None]

DEFAULT_MAX_QUEUE = 1000

# which (type, id) keys a message reaches, by the kind of subscription it came through:
# a classic connection subscribed to a type's channel *and* to the namespace pattern gets
# each notification twice, once for the feeds of that type and once for those of every type
_BY_KIND: dict[str, tuple[tuple[bool, bool], ...]] = {
    "message": ((True, True), (True, False)),
    "pmessage": ((False, True), (False, False)),
    "smessage": ((True, True), (True, False), (False, True), (False, False)),
}


def _nothing() -> None:
    return None


class LiveInbox:
    """One live feed's queue, filled by the shared reader and emptied by the feed's consumer.

    ``wake`` is called when the queue stops being empty (the consumer may be waiting).
    One producer and one consumer: ``dropped`` is written by the reader only, what was
    reported of it by the consumer only.
    """

    __slots__ = ("_queue", "_reported", "dropped", "max_queue", "selection", "wake")

    def __init__(
        self,
        selection: LiveSelection,
        *,
        max_queue: int = DEFAULT_MAX_QUEUE,
        wake: Callable[[], object] = _nothing,
    ) -> None:
        if max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {max_queue}")
        self.selection = selection
        self.max_queue = max_queue
        self.wake = wake
        self.dropped = 0
        self._reported = 0
        self._queue: deque[LiveNotification] = deque()

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def fell_behind(self) -> bool:
        """Whether notifications were dropped since the consumer last heard of it."""
        return self.dropped != self._reported

    def put(self, notification: LiveNotification) -> None:
        """Queue ``notification``, or drop and count it when the queue is full."""
        queue = self._queue
        if len(queue) >= self.max_queue:
            self.dropped += 1
            return
        queue.append(notification)
        if len(queue) == 1:  # after the append: a consumer that saw it empty is woken
            self.wake()

    def take(self) -> LiveNotification | None:
        """The next notification, ``None`` if there is none yet.

        Raises ``LiveFeedFellBehind`` once after an overflow, discarding what is queued
        (the consumer re-reads the store, which covers it); then the queue fills again.
        """
        dropped = self.dropped
        if dropped != self._reported:
            discarded = len(self._queue)
            self._queue.clear()
            missed = dropped - self._reported + discarded
            self._reported = dropped
            raise LiveFeedFellBehind(self.selection, missed)
        queue = self._queue
        return queue.popleft() if queue else None


class LiveRoutes:
    """The feeds of one store's shared subscription, and the channels they need.

    Feeds are filed under (type, id) keys, ``None`` meaning any: a feed of some types
    with no id filter under ``(type, None)``, one of every type with ids under
    ``(None, id)``. On a sharded cluster, where there are no patterns, the feeds of every
    type share the channels of the types ``discover`` was told about.
    """

    def __init__(self, channels: LiveChannels) -> None:
        self.channels = channels
        self.malformed = 0  # messages on our channels that are not notifications: skipped
        self._feeds: dict[_Key, dict[LiveInbox, None]] = {}
        self._own: dict[LiveInbox, tuple[Target, ...]] = {}
        self._needs: dict[Target, int] = {}
        self._everyone: dict[LiveInbox, None] = {}  # sharded feeds of every type
        self._types: set[str] = set()  # the types whose channels those hold

    def __len__(self) -> int:
        return len(self._own)

    def __contains__(self, inbox: object) -> bool:
        return inbox in self._own

    def wanted(self, target: Target) -> bool:
        """Whether some feed needs ``target`` subscribed."""
        return target in self._needs

    def join(self, inbox: LiveInbox, known_types: Iterable[str] = ()) -> list[Target]:
        """Add a feed; the targets no feed needed before (to subscribe).

        ``known_types``: on a sharded cluster, for a feed of every type, the aggregate
        types the namespace has now.
        """
        if inbox in self._own:
            raise ValueError("this inbox already joined")
        selection = inbox.selection
        own = self._targets(selection)
        self._own[inbox] = own
        for key in _keys(selection):
            self._feeds.setdefault(key, {})[inbox] = None
        added = self._hold(own)
        if self.channels.sharded and selection.aggregate_types is None:
            self._everyone[inbox] = None
            added += self.discover(known_types)
        return added

    def targets_of(self, inbox: LiveInbox) -> list[Target]:
        """Every target ``inbox`` listens through (to wait for their confirmation)."""
        targets = list(self._own.get(inbox, ()))
        if inbox in self._everyone:
            targets += self._type_targets(self._types)
        return targets

    def discover(self, types: Iterable[str]) -> list[Target]:
        """Types found in the namespace (sharded feeds of every type): the new targets."""
        if not self._everyone:
            return []
        new = set(types) - self._types
        self._types |= new
        return self._hold(self._type_targets(new))

    def leave(self, inbox: LiveInbox) -> list[Target]:
        """Remove a feed; the targets no feed needs any more (to unsubscribe)."""
        own = self._own.pop(inbox, None)
        if own is None:
            return []
        for key in _keys(inbox.selection):
            feeds = self._feeds.get(key)
            if feeds is not None:
                feeds.pop(inbox, None)
                if not feeds:
                    del self._feeds[key]
        dropped = self._release(own)
        if inbox in self._everyone:
            del self._everyone[inbox]
            if not self._everyone:
                dropped += self._release(self._type_targets(self._types))
                self._types.clear()
        return dropped

    def route(self, kind: str, channel: str, payload: bytes | str) -> int:
        """Queue one published message for every feed that keeps it; how many got it.

        ``kind`` is the message's type as Redis sends it (``message``, ``pmessage``,
        ``smessage``); anything else is ignored, and so is a payload that is not a
        notification (counted in ``malformed``: the shared reader goes on).
        """
        spans = _BY_KIND.get(kind)
        if spans is None:
            return 0
        try:
            notification = parse_notification(channel, payload)
        except StoredDataError:
            self.malformed += 1
            return 0
        aggregate_type, aggregate_id = notification.aggregate_type, notification.aggregate_id
        delivered = 0
        for by_type, by_id in spans:
            feeds = self._feeds.get(
                (aggregate_type if by_type else None, aggregate_id if by_id else None)
            )
            if not feeds:
                continue
            for inbox in feeds:
                kept = inbox.selection.event_types
                if kept is None or notification.event_type in kept:
                    inbox.put(notification)
                    delivered += 1
        return delivered

    def _targets(self, selection: LiveSelection) -> tuple[Target, ...]:
        types = selection.aggregate_types
        if types is not None:
            return tuple(self._type_targets(types))
        if self.channels.sharded:
            return ()  # the channels of the discovered types, held for every such feed
        return ((PATTERN, self.channels.keys.live_pattern),)

    def _type_targets(self, types: Iterable[str]) -> list[Target]:
        return [(CHANNEL, channel) for channel in self.channels.for_types(types)]

    def _hold(self, targets: Iterable[Target]) -> list[Target]:
        added = []
        for target in targets:
            count = self._needs.get(target, 0)
            self._needs[target] = count + 1
            if count == 0:
                added.append(target)
        return added

    def _release(self, targets: Iterable[Target]) -> list[Target]:
        dropped = []
        for target in targets:
            count = self._needs[target] - 1
            if count:
                self._needs[target] = count
            else:
                del self._needs[target]
                dropped.append(target)
        return dropped


def _keys(selection: LiveSelection) -> Iterator[_Key]:
    # None: any (one key); an empty set keeps nothing (no key at all)
    types: Iterable[str | None] = (
        (None,) if selection.aggregate_types is None else selection.aggregate_types
    )
    ids: Iterable[str | None] = (
        (None,) if selection.aggregate_ids is None else selection.aggregate_ids
    )
    for aggregate_type in types:
        for aggregate_id in ids:
            yield aggregate_type, aggregate_id


@attrs.frozen
class Requests(Generic[W]):
    """What to send the server now, and the waiters already satisfied without a reply."""

    subscribe: list[Target]
    unsubscribe: list[Target]
    released: list[W]


@attrs.define
class _Waiter(Generic[W]):
    waiter: W
    pending: set[Target]


class SubscriptionLedger(Generic[W]):
    """What the server was asked for per target, what it confirmed, and who waits for it.

    A target is *settled* when the server was asked for what the routes want (subscribed
    exactly when wanted) and confirmed every request sent for it. Requests and their
    confirmations keep their order on a connection, so counting them is enough; after a
    reconnect redis-py subscribes again to what it was asked, and confirmations nobody
    counted on are ignored.
    """

    def __init__(self, wanted: Callable[[Target], bool]) -> None:
        self._wanted = wanted
        self._asked: set[Target] = set()
        self._unconfirmed: dict[Target, int] = {}
        self._dirty: set[Target] = set()
        self._waiting: dict[Target, list[_Waiter[W]]] = {}

    def touch(self, targets: Iterable[Target]) -> None:
        """Targets whose need changed: looked at by the next ``requests``."""
        self._dirty.update(targets)

    @property
    def dirty(self) -> bool:
        """Whether ``requests`` has something to look at."""
        return bool(self._dirty)

    def settled(self, target: Target) -> bool:
        """Asked for as wanted, and every request for it confirmed."""
        asked = target in self._asked
        return asked == self._wanted(target) and target not in self._unconfirmed

    def requests(self) -> Requests[W]:
        """The subscribe and unsubscribe requests to send now, counted as sent."""
        subscribe, unsubscribe, untouched = [], [], []
        for target in sorted(self._dirty):
            wanted = self._wanted(target)
            if wanted and target not in self._asked:
                self._asked.add(target)
                subscribe.append(target)
            elif not wanted and target in self._asked:
                self._asked.discard(target)
                unsubscribe.append(target)
            else:
                untouched.append(target)  # wanted back before anything was sent
                continue
            self._unconfirmed[target] = self._unconfirmed.get(target, 0) + 1
        self._dirty.clear()
        released = [w for target in untouched for w in self._release(target)]
        return Requests(subscribe, unsubscribe, released)

    def unsent(self, subscribe: Iterable[Target], unsubscribe: Iterable[Target]) -> None:
        """Sending these failed: forget them, so the next ``requests`` sends them again."""
        for target in subscribe:
            self._asked.discard(target)
            self._uncount(target)
            self._dirty.add(target)
        for target in unsubscribe:
            self._asked.add(target)
            self._uncount(target)
            self._dirty.add(target)

    def wait(self, targets: Iterable[Target], waiter: W) -> bool:
        """File ``waiter`` until every target is settled; False if they already are."""
        pending = {target for target in targets if not self.settled(target)}
        if not pending:
            return False
        entry = _Waiter(waiter, pending)
        for target in pending:
            self._waiting.setdefault(target, []).append(entry)
        return True

    def confirmed(self, target: Target) -> list[W]:
        """The server confirmed a request for ``target``: the waiters that are done."""
        self._uncount(target)
        return self._release(target)

    def refused(self) -> list[W]:
        """The server refused a request (an error reply names no target): every waiter,
        released to fail; the counts of what is unconfirmed start over."""
        waiters = {id(e.waiter): e.waiter for entries in self._waiting.values() for e in entries}
        self._waiting.clear()
        self._unconfirmed.clear()
        return list(waiters.values())

    def forget(self, waiter: W) -> None:
        """Stop waiting for ``waiter`` (it timed out, or its task was cancelled)."""
        for target in list(self._waiting):
            kept = [entry for entry in self._waiting[target] if entry.waiter is not waiter]
            if kept:
                self._waiting[target] = kept
            else:
                del self._waiting[target]

    def _uncount(self, target: Target) -> None:
        count = self._unconfirmed.get(target, 0)
        if count > 1:
            self._unconfirmed[target] = count - 1
        elif count == 1:
            del self._unconfirmed[target]

    def _release(self, target: Target) -> list[W]:
        if not self.settled(target):
            return []
        released = []
        for entry in self._waiting.pop(target, ()):
            entry.pending.discard(target)
            if not entry.pending:
                released.append(entry.waiter)
        return released
