"""``doctor`` findings as pure functions of facts read from the server.

Each finding has a level (``ok``, ``warning``, ``error``), what was checked, what was
found, and what to change. On a cluster the server settings (version, persistence,
eviction, stream node size) are judged on every primary, each finding naming its node:
one careless shard is enough to lose history.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import attrs

from eventstore._core.server import MIN_VERSION, REQUIRED_COMMANDS
from eventstore._redis.server import ServerInfo

__all__ = ["REQUIRED_COMMANDS", "Facts", "Finding", "NodeFacts", "diagnose"]

SMALL_NODE_BYTES = 1024
SLOW_ROUND_TRIP_MS = 5.0


@attrs.frozen
class NodeFacts:
    """What ``doctor`` read from one server: ``node`` is its ``host:port`` on a cluster.

    ``node`` is empty for a standalone server (there is only one).
    """

    node: str
    info: ServerInfo
    rdb_save: str | None


@attrs.frozen
class Facts:
    """What ``doctor`` read: each server (every primary of a cluster), then the client's view."""

    nodes: Sequence[NodeFacts]
    lua_ok: bool
    lua_error: str
    missing_commands: Sequence[str]
    latency_ms: Mapping[str, float]


@attrs.frozen
class Finding:
    """One check: ``level`` ok/warning/error, ``detail`` what was found, ``advice`` what to do."""

    level: str
    check: str
    detail: str
    advice: str = ""
    node: str = ""

    def as_json(self) -> dict[str, str | None]:
        """The documented ``{"level", "check", "detail", "advice", "node"}`` shape."""
        return {"level": self.level, "check": self.check, "detail": self.detail,
                "advice": self.advice, "node": self.node or None}  # fmt: skip


def _version(info: ServerInfo) -> Finding:
    # the server as it names itself; a fork also says which Redis it answers as
    compatible = "" if info.product == "Redis" else f" (as Redis {info.version_text})"
    detail = f"{info.name}{compatible}, {info.mode}"
    if info.version < MIN_VERSION:
        return Finding("error", "server", detail, "upgrade to Redis 6.2 or newer (XAUTOCLAIM)")
    if not info.has_waitaof:
        return Finding(
            "ok", "server", detail + " (no WAITAOF: fsync durability needs appendfsync always)"
        )
    return Finding("ok", "server", detail)


def _persistence(info: ServerInfo, rdb_save: str | None) -> Finding:
    if info.appendonly is None:
        return Finding(
            "warning", "persistence", "CONFIG is disabled: persistence settings unknown",
            "make sure your provider keeps AOF (appendfsync everysec or always) on",
        )  # fmt: skip
    if info.appendonly == "yes":
        detail = f"AOF on, appendfsync {info.appendfsync}"
        if info.appendfsync == "no":
            return Finding(
                "warning", "persistence", detail + " (the OS decides when to fsync)",
                "CONFIG SET appendfsync everysec (at most a second lost) or always",
            )  # fmt: skip
        return Finding("ok", "persistence", detail)
    if rdb_save:
        return Finding(
            "warning", "persistence", f"RDB snapshots only (save {rdb_save!r})",
            "CONFIG SET appendonly yes: with RDB a crash loses every event since the last save",
        )  # fmt: skip
    return Finding(
        "error", "persistence", "no AOF and no RDB: a restart loses every event",
        "CONFIG SET appendonly yes (and persist it in redis.conf)",
    )  # fmt: skip


def _eviction(info: ServerInfo) -> Finding:
    policy = info.maxmemory_policy
    if policy is None:
        return Finding(
            "warning", "maxmemory-policy", "unknown (CONFIG disabled)",
            "make sure it is noeviction: an evicted stream is lost history",
        )  # fmt: skip
    if policy.startswith("allkeys-"):
        return Finding(
            "error", "maxmemory-policy", f"{policy}: eviction would delete history",
            "CONFIG SET maxmemory-policy noeviction",
        )  # fmt: skip
    return Finding("ok", "maxmemory-policy", policy)


def _node_size(info: ServerInfo) -> Finding:
    size = info.stream_node_max_bytes
    if size is None:
        return Finding(
            "warning",
            "stream-node-max-bytes",
            "unknown (CONFIG disabled)",
            "set it to 512 if you can: small streams preallocate this much",
        )
    if size == 0 or size > SMALL_NODE_BYTES:
        return Finding(
            "warning", "stream-node-max-bytes",
            f"{size} bytes: every small aggregate stream preallocates up to that much",
            "CONFIG SET stream-node-max-bytes 512 (measured ~186 B/event vs ~430 at 4096)",
        )  # fmt: skip
    return Finding("ok", "stream-node-max-bytes", f"{size} bytes")


def _scripting(facts: Facts) -> list[Finding]:
    found = []
    if facts.lua_ok:
        found.append(Finding("ok", "lua", "Lua scripts run (SCRIPT LOAD, EVALSHA)"))
    else:
        found.append(
            Finding(
                "error",
                "lua",
                f"Lua scripts refused: {facts.lua_error}",
                "allow EVALSHA and SCRIPT LOAD (ACL or provider settings): appends are scripts",
            )
        )
    if facts.missing_commands:
        missing = ", ".join(facts.missing_commands)
        found.append(
            Finding(
                "error",
                "commands",
                f"unavailable: {missing}",
                "use Redis 6.2+ and allow these commands in the ACL",
            )
        )
    else:
        found.append(Finding("ok", "commands", "every command the store uses is available"))
    return found


def _latency(latency_ms: Mapping[str, float]) -> Finding:
    median = latency_ms.get("p50", 0.0)
    detail = f"round trip p50 {median:.2f} ms, max {latency_ms.get('max', 0.0):.2f} ms"
    if median > SLOW_ROUND_TRIP_MS:
        return Finding(
            "warning",
            "latency",
            detail,
            "run the application close to Redis: every append is a round trip",
        )
    return Finding("ok", "latency", detail)


def _per_node(facts: Facts) -> list[Finding]:
    """The server checks of every node, grouped by check (each node in the same order)."""
    checks: list[Callable[[NodeFacts], Finding]] = [
        lambda n: _version(n.info),
        lambda n: _persistence(n.info, n.rdb_save),
        lambda n: _eviction(n.info),
        lambda n: _node_size(n.info),
    ]
    return [attrs.evolve(check(n), node=n.node) for check in checks for n in facts.nodes]


def diagnose(facts: Facts) -> list[Finding]:
    """Every finding, in the order people should read them."""
    return [*_per_node(facts), *_scripting(facts), _latency(facts.latency_ms)]
