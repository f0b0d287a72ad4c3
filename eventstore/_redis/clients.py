"""Opening redis-py clients (standalone or cluster) and loading our Lua scripts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from importlib import resources
from typing import Any, cast

import redis
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from eventstore._redis.batch import send_batch

__all__ = [
    "DEFAULT_SOCKET_TIMEOUT",
    "as_cluster_url",
    "cluster_url",
    "load_script",
    "open_client",
    "release_cluster_nodes",
    "shard_client",
]

# Blocking reads (subscriptions, workers) block for at most a few seconds; the socket
# timeout must stay above that or redis-py times out and silently retries the read.
DEFAULT_SOCKET_TIMEOUT = 30.0


def load_script(client: redis.Redis, name: str, *, hot: bool = False) -> Script:
    """Register ``lua/<name>.lua`` on ``client`` (EVALSHA, reloaded after NOSCRIPT).

    ``hot``: a script called on every operation (the append), as a ``_HotScript``.
    """
    source = resources.files("eventstore._redis").joinpath("lua", f"{name}.lua").read_text()
    return _HotScript(client, source) if hot else client.register_script(source)


class _HotScript(Script):
    """redis-py's ``Script`` for the append, sent the way ``send_batch`` sends reads.

    ``Script.__call__`` checks for a pipeline per call (an import and an isinstance
    through typing's Protocol check: ~1.8 us), and ``execute_command`` goes through
    redis-py's deprecation wrapper, observability hooks and callback lookup. On a single
    server the EVALSHA is written on a pooled connection and its reply read back, with
    the connection's own retry policy (measured, calls interleaved with a raw XADD round
    trip: 2.06x -> 1.68x of it). On a cluster, ``evalsha`` routes it by its first key.
    Loaded again after NOSCRIPT either way.
    """

    def __init__(self, registered_client: Any, script: str) -> None:
        super().__init__(registered_client, script)
        self._direct = not isinstance(registered_client, RedisCluster)

    def __call__(
        self,
        keys: Sequence[Any] | None = None,
        args: Iterable[Any] | None = None,
        client: Any = None,
    ) -> Any:
        if client is not None and client is not self.registered_client:
            return super().__call__(keys, args, client)  # a pipeline, another client
        keys = tuple(keys) if keys else ()  # a tuple's tuple() is itself: no copy
        args = tuple(args) if args else ()
        try:
            return self._evalsha(keys, args)
        except NoScriptError:  # the server lost its scripts (restart, SCRIPT FLUSH)
            self.sha = self.registered_client.script_load(self.script)
            return self._evalsha(keys, args)

    def _evalsha(self, keys: tuple[Any, ...], args: tuple[Any, ...]) -> Any:
        client: Any = self.registered_client  # a Redis when _direct, else a RedisCluster
        if self._direct:
            return send_batch(client, [("EVALSHA", self.sha, len(keys), *keys, *args)])[0]
        return client.evalsha(self.sha, len(keys), *keys, *args)


def open_client(url: str, *, cluster: bool = False, **options: Any) -> redis.Redis:
    """A client for ``url``: redis-py's ``RedisCluster`` when ``cluster`` is true or the
    scheme is ``redis+cluster://`` / ``rediss+cluster://``, else a plain ``Redis``.

    A cluster URL names any one node (the seed); the client discovers the others.
    ``rediss://`` and the ``ssl_*`` options work for both kinds.
    """
    options.setdefault("socket_timeout", DEFAULT_SOCKET_TIMEOUT)
    options.setdefault("socket_connect_timeout", 5.0)
    plain, in_url = cluster_url(url)
    if cluster or in_url:
        # RedisCluster has the same command methods and routes scripts by their first key;
        # every script call's keys share one hash tag, so each goes to a single shard.
        return cast(redis.Redis, RedisCluster.from_url(plain, **options))
    options.setdefault("health_check_interval", 15)
    return redis.Redis.from_url(url, **options)


def as_cluster_url(url: str) -> str:
    """``redis://host:port`` as ``redis+cluster://host:port`` (``rediss`` alike).

    ``ValueError`` for a URL that cannot name a cluster node (``unix://``, not a URL).
    """
    plain, already = cluster_url(url)
    scheme, sep, rest = plain.partition("://")
    if not sep or scheme not in ("redis", "rediss"):
        raise ValueError(f"a Redis Cluster needs a redis:// or rediss:// URL, got {scheme!r}")
    return url if already else f"{scheme}+cluster{sep}{rest}"


def cluster_url(url: str) -> tuple[str, bool]:
    """``url`` without a ``+cluster`` suffix on its scheme, and whether it had one."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme.endswith("+cluster"):
        return f"{scheme.removesuffix('+cluster')}{sep}{rest}", True
    return url, False


def shard_client(client: redis.Redis, key: str) -> redis.Redis:
    """The client of the server holding ``key``: the node's own on a cluster."""
    if isinstance(client, RedisCluster):
        return cast(redis.Redis, client.get_node_from_key(key).redis_connection)
    return client


def release_cluster_nodes(client: RedisCluster) -> None:
    """Disconnect every node pool a cluster client holds.

    RedisCluster.close() leaves the pools of startup nodes, and of node objects replaced
    by a topology refresh, connected.
    """
    nodes = [
        *client.nodes_manager.startup_nodes.values(),
        *client.nodes_manager.nodes_cache.values(),
    ]
    for node in nodes:
        if node.redis_connection is not None:
            node.redis_connection.connection_pool.disconnect()
