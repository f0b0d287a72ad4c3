"""What the connected server is, and whether it is safe to keep history on."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import attrs
import redis
from redis.cluster import RedisCluster

from eventstore._core.errors import UnsafeServerConfig
from eventstore._core.replies import text

__all__ = ["ServerInfo", "check_server", "node_clients", "server_info", "server_infos"]


@attrs.frozen
class ServerInfo:
    """The settings of a server that matter to an event store."""

    version: tuple[int, ...]
    mode: str
    maxmemory_policy: str | None
    appendonly: str | None
    appendfsync: str | None
    stream_node_max_bytes: int | None

    @property
    def version_text(self) -> str:
        return ".".join(str(part) for part in self.version)

    @property
    def has_waitaof(self) -> bool:
        return self.version >= (7, 2)

    @property
    def has_sharded_pubsub(self) -> bool:
        """SPUBLISH / SSUBSCRIBE, and SPUBLISH allowed in scripts (Redis 7.0+)."""
        return self.version >= (7, 0)


def server_infos(client: redis.Redis) -> list[ServerInfo]:
    """``server_info`` of every primary of a cluster, or of the one server."""
    with node_clients(client) as nodes:
        return [server_info(node) for node in nodes.values()]


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
    pool = redis.ConnectionPool(**node_client.connection_pool.connection_kwargs)
    probe = redis.Redis(connection_pool=pool)
    try:
        yield probe
    finally:
        probe.close()
        pool.disconnect()


def server_info(client: redis.Redis) -> ServerInfo:
    """Read version, mode and the relevant CONFIG values (``None`` where CONFIG is refused)."""
    info: dict[str, Any] = client.info("server")
    version = tuple(int(part) for part in str(info.get("redis_version", "0")).split(".")[:3])
    return ServerInfo(
        version=version,
        mode=str(info.get("redis_mode", "standalone")),
        maxmemory_policy=_config(client, "maxmemory-policy"),
        appendonly=_config(client, "appendonly"),
        appendfsync=_config(client, "appendfsync"),
        stream_node_max_bytes=_int_or_none(_config(client, "stream-node-max-bytes")),
    )


def check_server(info: ServerInfo) -> None:
    """Refuse a server that may evict keys: an evicted stream is lost history."""
    policy = info.maxmemory_policy
    if policy is not None and policy.startswith("allkeys-"):
        raise UnsafeServerConfig(
            "maxmemory-policy",
            policy,
            "it can evict aggregate streams (lost history); set it to noeviction "
            "(or volatile-*, which never touches keys without a TTL)",
        )


def _config(client: redis.Redis, name: str) -> str | None:
    try:
        values: dict[Any, Any] = client.config_get(name)
    except redis.ResponseError:  # managed services often disable CONFIG
        return None
    for key, value in values.items():
        if text(key) == name:
            return text(value)
    return None


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value is not None and value.lstrip("-").isdigit() else None
