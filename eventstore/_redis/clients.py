"""Opening redis-py clients (standalone or cluster) and loading our Lua scripts."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from importlib import resources
from typing import Any, cast

import redis
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from eventstore._redis.batch import send_batch, send_on

__all__ = [
    "DEFAULT_SOCKET_TIMEOUT",
    "HotScript",
    "as_cluster_url",
    "close_client",
    "cluster_url",
    "load_hot_script",
    "load_script",
    "node_clients",
    "open_client",
    "release_cluster_nodes",
    "script_source",
    "shard_client",
]

# Blocking reads (subscriptions, workers) block for at most a few seconds; the socket
# timeout must stay above that or redis-py times out and silently retries the read.
DEFAULT_SOCKET_TIMEOUT = 30.0

LINE_MIN_POOL = 16
"""The smallest pool (``max_connections``) the append script holds a connection out of."""


def load_script(client: redis.Redis, name: str, *, shebang: bool = False) -> Script:
    """Register ``lua/<name>.lua`` on ``client`` (EVALSHA, reloaded after NOSCRIPT);
    ``shebang``: as a ``#!lua`` script (Redis 7.0+, see ``ServerInfo.has_script_flags``)."""
    return client.register_script(("#!lua\n" if shebang else "") + script_source(name))


def load_hot_script(client: redis.Redis, name: str) -> HotScript:
    """``load_script`` for a script called on every operation (the append): see
    ``HotScript``; ``release()`` it when the client is closed."""
    return HotScript(client, script_source(name))


def script_source(name: str) -> str:
    """The text of ``lua/<name>.lua``."""
    return resources.files("eventstore._redis").joinpath("lua", f"{name}.lua").read_text()


class HotScript(Script):
    """redis-py's ``Script`` for the append, sent the way ``send_batch`` sends reads, on a
    connection of its own when it is free.

    ``Script.__call__`` checks for a pipeline per call (an import and an isinstance
    through typing's Protocol check: ~1.8 us), ``execute_command`` goes through redis-py's
    deprecation wrapper, observability hooks and callback lookup, and taking a connection
    from redis-py 8's pool and giving it back costs ~7 us (a lock, a poll for stray data,
    metrics). On a single server the script keeps one pooled connection checked out (its
    *line*). An append that finds the line free checks it as the pool checks what it
    hands out (one the server closed meanwhile connects again), writes its EVALSHA there
    and reads the reply, with the connection's own retry policy. One that finds it busy
    (another thread appending) takes a pooled connection as reads do. After a fork the
    child takes a line of its own; ``release()`` gives the line back. A line is held only
    out of redis-py's plain ``ConnectionPool`` allowing at least ``LINE_MIN_POOL``
    connections (its default allows 2**31): out of a small or blocking pool it could
    starve the other commands. On a cluster, ``evalsha`` routes the call by its first
    key. Loaded again after NOSCRIPT either way.
    """

    def __init__(self, registered_client: Any, script: str) -> None:
        super().__init__(registered_client, script)
        self._direct = not isinstance(registered_client, RedisCluster)
        # a connection held out of a bounded pool could starve the store's other commands
        pool = getattr(registered_client, "connection_pool", None)
        self._holds_line = (
            self._direct
            and type(pool) is redis.ConnectionPool
            and pool.max_connections >= LINE_MIN_POOL
        )
        self._line: Any = None  # a connection of the client's pool, checked out
        self._line_pid = 0
        self._line_lock = threading.Lock()

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
        if not self._direct:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        command = ("EVALSHA", self.sha, len(keys), *keys, *args)
        if not self._holds_line or not self._line_lock.acquire(blocking=False):
            return send_batch(client, [command])[0]  # no line, or busy: a pooled connection
        try:
            line = self._line
            if line is None or self._line_pid != os.getpid():
                # a forked child must not share its parent's socket: it takes its own
                line = self._line = client.connection_pool.get_connection()
                self._line_pid = os.getpid()
            else:
                _check_idle(line)
            return send_on(line, [command])[0]
        finally:
            self._line_lock.release()

    def release(self) -> None:
        """Give the line back to the pool (the next append takes it again)."""
        with self._line_lock:
            line, self._line = self._line, None
            if line is not None and self._line_pid == os.getpid():
                pool = cast(redis.Redis, self.registered_client).connection_pool
                pool.release(line)


def _check_idle(connection: Any) -> None:
    """What the pool checks before it hands a connection out: one with something to read
    while idle was closed by the server (a kill, a timeout, a restart) or is out of step;
    it is dropped, and the next write connects again. Without this an append after such
    a close would fail on a client without retries (redis-py's ``from_url`` default)."""
    try:
        stale = connection.can_read()
    except (redis.ConnectionError, OSError):
        stale = True
    if stale:
        connection.disconnect()


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


def close_client(client: redis.Redis) -> None:
    """Close ``client`` (and, on a cluster, every node pool it holds)."""
    client.close()
    if isinstance(client, RedisCluster):
        release_cluster_nodes(client)


@contextlib.contextmanager
def node_clients(client: redis.Redis) -> Iterator[dict[str, redis.Redis]]:
    """A client per primary of a cluster by ``host:port``, closed on exit; else ``{"": client}``.

    For server-level commands (INFO, CONFIG GET) that a cluster client sends to one node.
    """
    if not isinstance(client, RedisCluster):
        yield {"": client}
        return
    with contextlib.ExitStack() as stack:
        yield {
            node.name: stack.enter_context(_probe(node.redis_connection))
            for node in client.get_primaries()
        }


@contextlib.contextmanager
def _probe(node_client: redis.Redis) -> Iterator[redis.Redis]:
    # a private pool with the node's settings, closed at once: the cluster client may
    # replace its node objects on a topology refresh without closing their connections
    node_pool = node_client.connection_pool  # its class too: SSLConnection on rediss://
    pool = redis.ConnectionPool(
        connection_class=node_pool.connection_class, **node_pool.connection_kwargs
    )
    probe = redis.Redis(connection_pool=pool)
    try:
        yield probe
    finally:
        probe.close()
        pool.disconnect()
