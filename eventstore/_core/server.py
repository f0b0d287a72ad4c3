"""What a server is, and whether it is safe to keep history on (no I/O: the replies of
INFO and CONFIG GET in, ``ServerInfo`` out)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import attrs

from eventstore._core.errors import UnsafeServerConfig
from eventstore._core.replies import text

__all__ = ["CONFIG_NAMES", "INFO_SECTIONS", "ServerInfo", "check_server", "parse_server_info"]

INFO_SECTIONS = ("server", "memory", "persistence")
CONFIG_NAMES = ("maxmemory-policy", "appendonly", "appendfsync", "stream-node-max-bytes")
"""Asked one name per CONFIG GET: 6.2 takes a single pattern."""


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


def parse_server_info(sections: Sequence[dict[str, Any]], configs: Sequence[Any]) -> ServerInfo:
    """``ServerInfo`` from the ``INFO_SECTIONS`` and the ``CONFIG_NAMES`` replies (an
    exception where CONFIG GET was refused)."""
    server, memory, persistence = sections
    config = {
        name: _config_value(name, reply) for name, reply in zip(CONFIG_NAMES, configs, strict=True)
    }
    refused = all(isinstance(reply, Exception) for reply in configs)
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
    if isinstance(reply, Exception):  # managed services often disable CONFIG
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
