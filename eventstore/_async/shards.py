"""Raw clients for the server holding a key: the twin of ``eventstore._redis.shards``.

On a single server it is one client on the store's pool (whose multiplexer carries the
store's hot commands). On a cluster it is one client per node, on a pool made from the
node's settings: a command whose keys share one hash tag goes straight to the node
owning the slot. After one of ``RETRYABLE_ON_CLUSTER`` a caller ``refresh()``es the slot
map before it tries again.
"""

from __future__ import annotations

import contextlib
from typing import Any, cast

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from eventstore._async.mux import close_multiplexer
from eventstore._redis.shards import RETRYABLE, RETRYABLE_ON_CLUSTER

__all__ = ["RETRYABLE", "RETRYABLE_ON_CLUSTER", "AsyncRawClients", "node_client", "refresh_slots"]


def raw_client(client: redis.Redis) -> redis.Redis:
    """A client on the same connections as ``client`` that returns replies unparsed."""
    raw = redis.Redis(connection_pool=client.connection_pool)
    raw.response_callbacks.clear()
    return raw


def node_client(node: Any, *, raw: bool = True) -> redis.Redis:
    """A client with a pool of its own for one node of an async ``RedisCluster``: raw
    replies unless ``raw=False`` (then redis-py's reply callbacks parse them)."""
    pool = redis.ConnectionPool(connection_class=node.connection_class, **node.connection_kwargs)
    client = redis.Redis(connection_pool=pool)
    if raw:
        client.response_callbacks.clear()
    return client


async def refresh_slots(cluster: RedisCluster) -> None:
    """Re-read the cluster's slot map (after a failover); a failure is left to the retry."""
    with contextlib.suppress(redis.RedisError, RedisClusterException):
        await cluster.nodes_manager.initialize()


class AsyncRawClients:
    """Raw clients for the server (or cluster node) holding a key."""

    def __init__(self, client: redis.Redis) -> None:
        self.cluster = client if isinstance(client, RedisCluster) else None
        self._single = raw_client(client) if self.cluster is None else None
        self._nodes: dict[str, redis.Redis] = {}

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
        raw = self._nodes.get(node.name)
        if raw is None:
            raw = self._nodes[node.name] = node_client(node)
        return raw

    async def refresh(self) -> None:
        """Re-read the slot map after a failover or a moved slot (no-op on one server)."""
        if self.cluster is not None:
            await refresh_slots(self.cluster)

    async def aclose(self) -> None:
        """Close the node clients' pools (a single server's is the store's)."""
        nodes, self._nodes = self._nodes, {}
        for raw in nodes.values():
            await close_multiplexer(raw)
            await raw.connection_pool.disconnect()
        if self._single is not None:
            await close_multiplexer(self._single)
