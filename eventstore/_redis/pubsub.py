"""The Pub/Sub connections behind a live feed: classic (SUBSCRIBE) and sharded (SSUBSCRIBE).

Both hand out data messages only, as ``(channel, payload)``, and return once the server
confirmed every subscription, so "from now" is exact: an append that starts after the
feed was opened is seen.

Sharded channels live on the node owning their slot, so a sharded feed holds one
connection per node (redis-py's cluster ``PubSub`` keeps them). Its own
``get_sharded_message(timeout=t)`` waits ``t`` on each node in turn, so a message on the
last node could wait ``(nodes - 1) * t``; the sharded subscriber instead looks at every
node without waiting and then sleeps in one ``select`` on all their sockets.
"""

from __future__ import annotations

import contextlib
import select
import time
from abc import ABC, abstractmethod
from collections import deque
from typing import TYPE_CHECKING, Any, cast

from eventstore._core.keys import KeySchema
from eventstore._core.notifications import LiveStats
from eventstore._core.replies import text

if TYPE_CHECKING:
    import redis
    from redis.client import PubSub
    from redis.cluster import ClusterPubSub, RedisCluster

__all__ = [
    "ClassicSubscriber",
    "Message",
    "ShardedSubscriber",
    "classic_live_stats",
    "sharded_live_stats",
]

Message = tuple[str, bytes | str]
"""A data message: the channel it came on, and its payload."""

CONFIRM_SECONDS = 10.0


class _Subscriber(ABC):
    """What both kinds share: skipping control messages, waiting for confirmations."""

    _data_types: tuple[str, ...] = ()
    _confirm_types: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._early: deque[Message] = deque()

    @abstractmethod
    def _poll(self, timeout: float) -> dict[str, Any] | None:
        """One raw message (data or control) within ``timeout`` seconds, or ``None``."""

    @abstractmethod
    def close(self) -> None:
        """Unsubscribe and release the connection(s)."""

    def next_message(self, timeout: float) -> Message | None:
        """The next data message within ``timeout`` seconds (0: only if one is there)."""
        if self._early:
            return self._early.popleft()
        deadline = time.monotonic() + timeout
        while True:
            raw = self._poll(max(deadline - time.monotonic(), 0.0))
            if raw is not None and text(raw["type"]) in self._data_types:
                return text(raw["channel"]), raw["data"]
            if time.monotonic() >= deadline:
                return None

    def _await_confirmations(self, expected: int) -> None:
        deadline = time.monotonic() + CONFIRM_SECONDS
        while expected > 0 and time.monotonic() < deadline:
            raw = self._poll(0.5)
            if raw is None:
                continue
            kind = text(raw["type"])
            if kind in self._confirm_types:
                expected -= 1
            elif kind in self._data_types:
                # published on a channel confirmed earlier: keep it for the reader
                self._early.append((text(raw["channel"]), raw["data"]))
        if expected > 0:
            raise TimeoutError(
                f"the server did not confirm the live subscription in {CONFIRM_SECONDS:.0f} s"
            )


class ClassicSubscriber(_Subscriber):
    """SUBSCRIBE to channels, or PSUBSCRIBE to one pattern, on one connection."""

    _data_types = ("message", "pmessage")
    _confirm_types = ("subscribe", "psubscribe")

    def __init__(
        self, client: redis.Redis, channels: list[str], *, pattern: str | None = None
    ) -> None:
        super().__init__()
        self._pubsub: PubSub = client.pubsub()  # type: ignore[no-untyped-call]
        try:
            if pattern is not None:
                self._pubsub.psubscribe(pattern)
            if channels:
                self._pubsub.subscribe(*channels)
            self._await_confirmations(len(channels) + (pattern is not None))
        except BaseException:
            self.close()
            raise

    def _poll(self, timeout: float) -> dict[str, Any] | None:
        return cast(dict[str, Any] | None, self._pubsub.get_message(timeout=timeout))

    def close(self) -> None:
        """Unsubscribe and release the connection."""
        self._pubsub.close()


class ShardedSubscriber(_Subscriber):
    """SSUBSCRIBE to sharded channels, each on the node that owns its slot.

    redis-py re-subscribes after a lost connection and follows slots that move to another
    node; what was published meanwhile is lost, which is what a hint allows.
    """

    _data_types = ("smessage",)
    _confirm_types = ("ssubscribe",)

    def __init__(self, cluster: RedisCluster, channels: list[str]) -> None:
        super().__init__()
        self._pubsub: ClusterPubSub = cluster.pubsub()  # type: ignore[no-untyped-call]
        self.channels: set[str] = set()
        try:
            self.add(channels, confirm=True)
        except BaseException:
            self.close()
            raise

    def add(self, channels: list[str], *, confirm: bool = False) -> None:
        """Subscribe to the channels not subscribed yet (``confirm``: wait for the server)."""
        new = [channel for channel in channels if channel not in self.channels]
        if not new:
            return
        self._pubsub.ssubscribe(*new)
        self.channels.update(new)
        if confirm:
            self._await_confirmations(len(new))

    def _poll(self, timeout: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while True:
            # one look at every node's connection, waiting on none of them
            message = self._pubsub.get_sharded_message(timeout=0)  # type: ignore[no-untyped-call]
            remaining = deadline - time.monotonic()
            if message is not None or remaining <= 0:
                return cast(dict[str, Any] | None, message)
            self._wait_readable(remaining)

    def _wait_readable(self, timeout: float) -> None:
        sockets = [
            pubsub.connection._sock
            for pubsub in list(self._pubsub.node_pubsub_mapping.values())
            if pubsub.connection is not None and pubsub.connection._sock is not None
        ]
        if not sockets:
            # every node connection is down: the next look reconnects (and re-subscribes)
            time.sleep(min(timeout, 0.05))
            return
        # a socket closed under us (reconnect, slot moved): just look again
        with contextlib.suppress(OSError, ValueError):
            select.select(sockets, [], [], timeout)

    def close(self) -> None:
        """Unsubscribe and release every node connection."""
        self._pubsub.close()


def classic_live_stats(client: redis.Redis, keys: KeySchema) -> LiveStats:
    """Subscribers per classic live channel of the namespace, and the server's patterns."""
    channels = [text(c) for c in cast(list[bytes], client.pubsub_channels(keys.live_pattern))]
    counts = cast(list[tuple[Any, int]], client.pubsub_numsub(*channels)) if channels else []
    numbers = {text(name): int(count) for name, count in counts}
    return LiveStats.of(keys, numbers, int(client.pubsub_numpat()), sharded=False)


def sharded_live_stats(cluster: RedisCluster, keys: KeySchema) -> LiveStats:
    """Subscribers per sharded live channel, asked of every primary about its own channels.

    ``PUBSUB SHARDNUMSUB`` is answered by whichever node gets it, with its own count (0 on
    a node that does not own the channel), so each node is asked about what it lists.
    """
    numbers: dict[str, int] = {}
    for node in cluster.get_primaries():  # type: ignore[no-untyped-call]
        node_client = cast("redis.Redis", node.redis_connection)
        listed = cast(list[bytes], node_client.pubsub_shardchannels(keys.live_shard_pattern))
        if not listed:
            continue
        counts = cast(list[tuple[Any, int]], node_client.pubsub_shardnumsub(*listed))
        numbers.update({text(name): int(count) for name, count in counts if int(count) > 0})
    return LiveStats.of(keys, numbers, 0, sharded=True)
