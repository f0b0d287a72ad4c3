"""Clients that return raw replies, for the server holding a key (one node of a cluster).

redis-py's reply callbacks for XPENDING, XAUTOCLAIM, XINFO and XREADGROUP reshape (and
on some replies break on) what the server sends; the core parses raw replies instead.
On a single server that is one client on the store's pool. On a cluster it is one client
per node, on that node's pool in the store's ``RedisCluster``: a command whose keys share
one hash tag goes straight to the node owning the slot.

Talking to a node directly bypasses redis-py's cluster redirections, so a caller that
gets one of ``RETRYABLE_ON_CLUSTER`` (the node died, the slot moved after a failover)
calls ``refresh()`` to re-read the slot map before it tries again.
"""

from __future__ import annotations

import contextlib
import threading
from typing import cast

import redis
from redis.cluster import RedisCluster
from redis.exceptions import (
    AskError,
    ClusterDownError,
    RedisClusterException,
    SlotNotCoveredError,
    TryAgainError,
)

__all__ = ["RETRYABLE", "RETRYABLE_ON_CLUSTER", "RawClients", "raw_client", "refresh_slots"]

RETRYABLE = (redis.ConnectionError, redis.TimeoutError)
"""Errors after which a reader reconnects (``BusyLoadingError`` is a ``ConnectionError``)."""

RETRYABLE_ON_CLUSTER = (
    *RETRYABLE,
    AskError,  # MovedError is an AskError: the slot lives elsewhere now
    ClusterDownError,
    TryAgainError,
    SlotNotCoveredError,
)
"""What a cluster says while a failover is under way: retry after ``refresh()``."""


def raw_client(client: redis.Redis) -> redis.Redis:
    """A client on the same connections as ``client`` that returns replies unparsed."""
    raw = redis.Redis(connection_pool=client.connection_pool)
    raw.response_callbacks.clear()
    return raw


def refresh_slots(cluster: RedisCluster) -> None:
    """Re-read the cluster's slot map (after a failover); a failure is left to the retry."""
    with contextlib.suppress(redis.RedisError, RedisClusterException):
        cluster.nodes_manager.initialize()


class RawClients:
    """Raw clients for the server (or cluster node) holding a key. Thread-safe."""

    def __init__(self, client: redis.Redis) -> None:
        self.cluster = client if isinstance(client, RedisCluster) else None
        self._single = raw_client(client) if self.cluster is None else None
        self._nodes: dict[str, redis.Redis] = {}
        self._lock = threading.Lock()

    @property
    def is_cluster(self) -> bool:
        """Whether keys live on several nodes."""
        return self.cluster is not None

    @property
    def retryable(self) -> tuple[type[Exception], ...]:
        """Errors after which a caller reconnects (and, on a cluster, ``refresh()``es)."""
        return RETRYABLE_ON_CLUSTER if self.cluster is not None else RETRYABLE

    def for_key(self, key: str) -> redis.Redis:
        """The raw client of the server holding ``key``."""
        if self._single is not None:
            return self._single
        node = cast(RedisCluster, self.cluster).get_node_from_key(key)
        node_client = cast(redis.Redis, node.redis_connection)
        with self._lock:
            raw = self._nodes.get(node.name)
            # a topology refresh may give the node a new pool: follow it
            if raw is None or raw.connection_pool is not node_client.connection_pool:
                raw = self._nodes[node.name] = raw_client(node_client)
        return raw

    def refresh(self) -> None:
        """Re-read the slot map after a failover or a moved slot (no-op on one server)."""
        if self.cluster is not None:
            refresh_slots(self.cluster)

    def close(self) -> None:
        """Nothing to release: the raw clients share the pools of the store's client."""
