"""What a server is, and whether it is safe to keep history on (no I/O: the replies of
INFO and CONFIG GET in, ``ServerInfo`` out)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import attrs

from eventstore._core.errors import ConfigurationError, UnsafeServerConfig
from eventstore._core.replies import text

__all__ = [
    "CONFIG_NAMES",
    "INFO_SECTIONS",
    "MIN_VERSION",
    "OPTIONAL_COMMANDS",
    "REQUIRED_COMMANDS",
    "ServerInfo",
    "check_capabilities",
    "check_server",
    "parse_server_info",
]

INFO_SECTIONS = ("server", "memory", "persistence")
CONFIG_NAMES = ("maxmemory-policy", "appendonly", "appendfsync", "stream-node-max-bytes")
"""Asked one name per CONFIG GET: 6.2 takes a single pattern."""

MIN_VERSION = (6, 2)
"""The oldest server the store runs on (XAUTOCLAIM, XADD with explicit ids past 0-n)."""
REQUIRED_COMMANDS = (
    "xadd", "xrange", "xrevrange", "xread", "xreadgroup", "xack", "xautoclaim",
    "xpending", "xgroup", "evalsha", "script", "publish",
)  # fmt: skip
"""Commands without which the store cannot work: its scripts, readers and groups."""
OPTIONAL_COMMANDS = ("waitaof", "spublish")
"""Commands the store uses where the server has them (durability waits, sharded Pub/Sub)."""
PROBED_COMMANDS = REQUIRED_COMMANDS + OPTIONAL_COMMANDS
"""Asked of the server in one ``COMMAND INFO``, which answers nil for a missing command."""


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
    product: str = "Redis"
    """What the server says it is: "Redis", or "Valkey" when INFO has ``valkey_version``."""
    product_version: tuple[int, ...] = ()
    """The product's own version (Valkey 9.1 answers ``redis_version`` 7.2.4 as well)."""
    commands: frozenset[str] | None = None
    """Which of ``PROBED_COMMANDS`` the server has (``None``: it was not asked)."""

    @property
    def version_text(self) -> str:
        """The Redis-compatible version (``redis_version``), e.g. ``7.0.15``."""
        return ".".join(str(part) for part in self.version)

    @property
    def name(self) -> str:
        """Product and version as people know them, e.g. ``Valkey 9.1.2``."""
        own = self.product_version or self.version
        return f"{self.product} {'.'.join(str(part) for part in own)}"

    @property
    def missing_commands(self) -> tuple[str, ...]:
        """The required commands the server lacks (a proxy, a partial implementation)."""
        if self.commands is None:
            return ()
        return tuple(name for name in REQUIRED_COMMANDS if name not in self.commands)

    def _has(self, command: str, since: tuple[int, ...]) -> bool:
        # asked of the server where it answered COMMAND INFO; its version otherwise
        return command in self.commands if self.commands is not None else self.version >= since

    @property
    def has_waitaof(self) -> bool:
        """WAITAOF (Redis 7.2+, Valkey)."""
        return self._has("waitaof", (7, 2))

    @property
    def has_script_flags(self) -> bool:
        """Scripts may start with a ``#!lua`` shebang (Redis 7.0+): such a script may only
        touch keys of its declared keys' slot on a cluster, where an older-style script
        may also touch other slots of the same node."""
        return self.version >= (7, 0)

    @property
    def has_sharded_pubsub(self) -> bool:
        """SPUBLISH / SSUBSCRIBE, and SPUBLISH allowed in scripts (Redis 7.0+)."""
        return self._has("spublish", (7, 0))


def parse_server_info(
    sections: Sequence[dict[str, Any]], configs: Sequence[Any], commands: Any = None
) -> ServerInfo:
    """``ServerInfo`` from the ``INFO_SECTIONS`` and the ``CONFIG_NAMES`` replies (an
    exception where CONFIG GET was refused) and the raw reply of ``COMMAND INFO`` for
    ``PROBED_COMMANDS`` (``None`` or an exception when it was not answered)."""
    server, memory, persistence = sections
    config = {
        name: _config_value(name, reply) for name, reply in zip(CONFIG_NAMES, configs, strict=True)
    }
    refused = all(isinstance(reply, Exception) for reply in configs)
    if refused:
        config["maxmemory-policy"] = _text_or_none(memory.get("maxmemory_policy"))
        config["appendonly"] = _aof_enabled(persistence.get("aof_enabled"))
    version = _version(server.get("redis_version"))
    valkey = server.get("valkey_version")
    return ServerInfo(
        version=version,
        mode=str(server.get("redis_mode", "standalone")),
        maxmemory_policy=config["maxmemory-policy"],
        appendonly=config["appendonly"],
        appendfsync=config["appendfsync"],
        stream_node_max_bytes=_int_or_none(config["stream-node-max-bytes"]),
        config_refused=refused,
        product="Valkey" if valkey is not None else "Redis",
        product_version=_version(valkey) if valkey is not None else version,
        commands=_commands(commands),
    )


def _version(value: Any) -> tuple[int, ...]:
    parts = str(value or "0").split(".")[:3]
    return tuple(int(part) if part.isdigit() else 0 for part in parts)


def _commands(reply: Any) -> frozenset[str] | None:
    if not isinstance(reply, list | tuple) or len(reply) != len(PROBED_COMMANDS):
        return None  # not asked, refused, or an answer we cannot read: judge by version
    return frozenset(name for name, entry in zip(PROBED_COMMANDS, reply, strict=True) if entry)


def check_capabilities(info: ServerInfo, where: str) -> None:
    """Refuse a server the store cannot run on: too old, or without streams or scripting.

    ``where`` names the server in the message (its address, or a cluster node).
    """
    if info.version < MIN_VERSION:
        raise ConfigurationError(
            f"{info.name} at {where} is too old: the store needs Redis 6.2 or later "
            f"(or Valkey), for XAUTOCLAIM and its stream scripts"
        )
    if info.missing_commands:
        raise ConfigurationError(
            f"{info.name} at {where} lacks {', '.join(info.missing_commands)}: the store "
            "needs streams, consumer groups and Lua scripting (a proxy or a compatible "
            "server without them cannot keep history)"
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
