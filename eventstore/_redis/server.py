"""What the connected server is, and whether it is safe to keep history on."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, cast

import attrs
import redis
from redis.cluster import RedisCluster

from eventstore._core.errors import UnsafeServerConfig
from eventstore._core.replies import text
from eventstore._redis.permissions import raise_if_denied

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
    config_refused: bool = False
    """CONFIG GET was refused (ACL or a managed service): settings read from INFO instead."""

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


_CONFIG_NAMES = ("maxmemory-policy", "appendonly", "appendfsync", "stream-node-max-bytes")


def server_info(client: redis.Redis) -> ServerInfo:
    """Read version, mode and the settings that matter, in one round trip.

    The settings come from CONFIG GET. A least-privilege user (see ``acl_rule``) may not
    run it (it can read secrets such as ``masterauth``); then ``INFO memory`` and
    ``INFO persistence`` give the eviction policy and whether AOF is on, and
    ``appendfsync`` and ``stream-node-max-bytes`` stay ``None`` (``config_refused``).
    """
    with client.pipeline(transaction=False) as pipe:
        for section in ("server", "memory", "persistence"):
            pipe.info(section)
        for name in _CONFIG_NAMES:  # one name per call: 6.2 takes a single pattern
            pipe.config_get(name)
        replies = pipe.execute(raise_on_error=False)
    server, memory, persistence = (_info_section(client, reply) for reply in replies[:3])
    config = {
        name: _config_value(name, reply)
        for name, reply in zip(_CONFIG_NAMES, replies[3:], strict=True)
    }
    refused = all(isinstance(reply, redis.ResponseError) for reply in replies[3:])
    if refused:
        config["maxmemory-policy"] = _text_or_none(memory.get("maxmemory_policy"))
        config["appendonly"] = _aof_enabled(persistence.get("aof_enabled"))
    version = tuple(int(part) for part in str(server.get("redis_version", "0")).split(".")[:3])
    return ServerInfo(
        version=version,
        mode=str(server.get("redis_mode", "standalone")),
        maxmemory_policy=config["maxmemory-policy"],
        appendonly=config["appendonly"],
        appendfsync=config["appendfsync"],
        stream_node_max_bytes=_int_or_none(config["stream-node-max-bytes"]),
        config_refused=refused,
    )


def _info_section(client: redis.Redis, reply: Any) -> dict[str, Any]:
    if isinstance(reply, redis.ResponseError):
        # INFO is in the rule of acl_rule: without it the store cannot tell what it runs on
        raise_if_denied(reply, client, command="info")
        raise reply
    return cast(dict[str, Any], reply)


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


def _config_value(name: str, reply: Any) -> str | None:
    if isinstance(reply, redis.ResponseError):  # managed services often disable CONFIG
        return None
    for key, value in cast(dict[Any, Any], reply).items():
        if text(key) == name:
            return text(value)
    return None


def _text_or_none(value: Any) -> str | None:
    return None if value is None else text(value)


def _aof_enabled(value: Any) -> str | None:
    if value is None:
        return None
    return "yes" if str(value) == "1" else "no"


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value is not None and value.lstrip("-").isdigit() else None
