# unasync: generates the sync module of the same name
"""Asking the connected server what it is (``ServerInfo``, parsed by the core)."""

from __future__ import annotations

from typing import Any, cast

import redis.asyncio as redis

from eventstore._async.clients import node_clients
from eventstore._core.server import (
    CONFIG_NAMES,
    INFO_SECTIONS,
    PROBED_COMMANDS,
    ServerInfo,
    check_server,
    parse_server_info,
)
from eventstore._redis.permissions import raise_if_denied

__all__ = ["ServerInfo", "check_server", "node_clients", "server_info", "server_infos"]


async def server_infos(client: redis.Redis) -> list[ServerInfo]:
    """``server_info`` of every primary of a cluster, or of the one server."""
    async with node_clients(client) as nodes:
        return [await server_info(node) for node in nodes.values()]


async def server_info(client: redis.Redis) -> ServerInfo:
    """Read version, mode and the settings that matter, in one round trip.

    The settings come from CONFIG GET. A least-privilege user (see ``acl_rule``) may not
    run it (it can read secrets such as ``masterauth``); then ``INFO memory`` and
    ``INFO persistence`` give the eviction policy and whether AOF is on, and
    ``appendfsync`` and ``stream-node-max-bytes`` stay ``None`` (``config_refused``).
    """
    async with client.pipeline(transaction=False) as pipe:
        for section in INFO_SECTIONS:
            pipe.info(section)
        for name in CONFIG_NAMES:
            pipe.config_get(name)
        # "COMMAND INFO" as one name: redis-py's parser of COMMAND fails on the nil a
        # missing command gets, and this name has no parser (the reply comes raw)
        cast(Any, pipe).execute_command("COMMAND INFO", *PROBED_COMMANDS)
        replies = await pipe.execute(raise_on_error=False)
    sections = [_info_section(client, reply) for reply in replies[: len(INFO_SECTIONS)]]
    configs = replies[len(INFO_SECTIONS) : len(INFO_SECTIONS) + len(CONFIG_NAMES)]
    return parse_server_info(sections, configs, replies[-1])


def _info_section(client: redis.Redis, reply: Any) -> dict[str, Any]:
    if isinstance(reply, redis.ResponseError):
        # INFO is in the rule of acl_rule: without it the store cannot tell what it runs on
        raise_if_denied(reply, client, command="info")
        raise reply
    return cast(dict[str, Any], reply)
