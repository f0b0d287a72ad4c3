"""Opening redis-py's asyncio clients and loading our Lua scripts.

The twin of ``eventstore._redis.clients``, with the same names.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, cast

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from eventstore._async.batch import send_batch
from eventstore._async.mux import close_multiplexer
from eventstore._async.shards import node_client
from eventstore._redis.clients import DEFAULT_SOCKET_TIMEOUT, cluster_url, script_source

__all__ = [
    "AsyncHotScript",
    "close_client",
    "load_hot_script",
    "load_script",
    "node_clients",
    "open_client",
    "shard_client",
]


def load_script(client: redis.Redis, name: str, *, shebang: bool = False) -> AsyncScript:
    """Register ``lua/<name>.lua`` on ``client`` (EVALSHA, reloaded after NOSCRIPT);
    ``shebang``: as a ``#!lua`` script (Redis 7.0+, see ``ServerInfo.has_script_flags``)."""
    return client.register_script(("#!lua\n" if shebang else "") + script_source(name))


def load_hot_script(client: redis.Redis, name: str) -> AsyncHotScript:
    """``load_script`` for the script called on every operation (the append)."""
    return AsyncHotScript(client, script_source(name))


class AsyncHotScript(AsyncScript):
    """redis-py's ``AsyncScript`` for the append, sent through the multiplexer.

    On a single server the EVALSHA rides with whatever else the loop's tasks send in the
    same turn; on a cluster ``evalsha`` routes the call by its first key. Loaded again
    after NOSCRIPT either way, once: every call that met NOSCRIPT meanwhile (a burst
    after a restart) awaits the same SCRIPT LOAD, then sends its EVALSHA again.
    """

    def __init__(self, registered_client: Any, script: str) -> None:
        super().__init__(registered_client, script)
        self._direct = not isinstance(registered_client, RedisCluster)
        self._loading: asyncio.Future[None] | None = None

    async def __call__(
        self,
        keys: Sequence[Any] | None = None,
        args: Iterable[Any] | None = None,
        client: Any = None,
    ) -> Any:
        if client is not None and client is not self.registered_client:
            return await super().__call__(keys, args, client)
        keys = tuple(keys) if keys else ()
        args = tuple(args) if args else ()
        try:
            return await self._evalsha(keys, args)
        except NoScriptError:  # the server lost its scripts (restart, SCRIPT FLUSH)
            await self._reload()
            return await self._evalsha(keys, args)

    async def _reload(self) -> None:
        loading = self._loading
        if loading is None:
            loading = self._loading = asyncio.ensure_future(self._load())
            loading.add_done_callback(self._loaded)
        await asyncio.shield(loading)  # one caller cancelled does not cancel the others'

    async def _load(self) -> None:
        client: Any = self.registered_client
        if self._direct:
            (sha,) = await send_batch(client, [("SCRIPT", "LOAD", self.script)])
            self.sha = sha.decode() if isinstance(sha, bytes) else str(sha)
        else:
            self.sha = await client.script_load(self.script)

    def _loaded(self, loading: asyncio.Future[None]) -> None:
        if self._loading is loading:
            self._loading = None
        if not loading.cancelled():
            loading.exception()  # retrieved: each awaiting caller raises it

    async def _evalsha(self, keys: tuple[Any, ...], args: tuple[Any, ...]) -> Any:
        client: Any = self.registered_client
        if not self._direct:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        (reply,) = await send_batch(client, [("EVALSHA", self.sha, len(keys), *keys, *args)])
        return reply

    def release(self) -> None:
        """Nothing held: the multiplexer's connection is closed with the client."""


async def open_client(url: str, *, cluster: bool = False, **options: Any) -> redis.Redis:
    """An asyncio client for ``url``: ``RedisCluster`` when ``cluster`` is true or the
    scheme is ``redis+cluster://`` / ``rediss+cluster://``, else a plain ``Redis``.

    A cluster client has read the slot map when it is returned."""
    options.setdefault("socket_timeout", DEFAULT_SOCKET_TIMEOUT)
    options.setdefault("socket_connect_timeout", 5.0)
    plain, in_url = cluster_url(url)
    if cluster or in_url:
        cluster_client = RedisCluster.from_url(plain, **options)
        try:
            await cluster_client.initialize()
        except BaseException:
            await cluster_client.aclose()
            raise
        return cast(redis.Redis, cluster_client)
    options.setdefault("health_check_interval", 15)
    return redis.Redis.from_url(url, **options)


_SHARDS: dict[tuple[int, str], redis.Redis] = {}


def shard_client(client: redis.Redis, key: str) -> redis.Redis:
    """The client of the server holding ``key``: a client on the node on a cluster."""
    if not isinstance(client, RedisCluster):
        return client
    node = client.get_node_from_key(key)
    shard = _SHARDS.get((id(client), node.name))
    if shard is None:
        shard = _SHARDS[(id(client), node.name)] = node_client(node, raw=False)
    return shard


async def close_client(client: redis.Redis) -> None:
    """Close ``client``, its multiplexer and (on a cluster) every node connection."""
    if isinstance(client, RedisCluster):
        for key in [key for key in _SHARDS if key[0] == id(client)]:
            shard = _SHARDS.pop(key)
            await shard.aclose()
            await shard.connection_pool.disconnect()
        await client.aclose()
        return
    await close_multiplexer(client)
    await client.aclose()
    await client.connection_pool.disconnect()


@contextlib.asynccontextmanager
async def node_clients(client: redis.Redis) -> AsyncIterator[dict[str, redis.Redis]]:
    """A client per primary of a cluster by ``host:port``, closed on exit; else ``{"": client}``.

    For server-level commands (INFO, CONFIG GET) that a cluster client sends to one node.
    """
    if not isinstance(client, RedisCluster):
        yield {"": client}
        return
    probes = {node.name: node_client(node, raw=False) for node in client.get_primaries()}
    try:
        yield probes
    finally:
        for probe in probes.values():
            await probe.aclose()
            await probe.connection_pool.disconnect()
