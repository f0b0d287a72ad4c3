"""Durability policies: what a server must offer for one, and what the wait after a write
must answer for it to hold. No I/O: the Redis layer sends what ``wait_command`` builds on
the connection of the write and hands the reply to ``check_wait_reply``.

Four levels (``Durability.level``):

* ``none``: the append returns once Redis applied it (memory; the server's own AOF/RDB
  schedule decides when it reaches disk).
* ``local fsync``: the primary's AOF holds the write on disk. Redis 7.2+ confirms it with
  ``WAITAOF 1 0 <timeout>``; older servers must run ``appendonly yes`` and
  ``appendfsync always`` (the reply is only sent after the fsync), re-read after every
  write with ``CONFIG GET append*`` on the same connection.
* ``n replicas``: n replicas acknowledged the write (``WAIT n <timeout>``), in memory.
* ``n replicas + fsync``: the primary and n replicas have fsynced it (``WAITAOF 1 n``),
  Redis 7.2+ only: an older server cannot tell whether a replica fsynced.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from eventstore._core.errors import ConfigurationError, DurabilityError
from eventstore._core.replies import text

__all__ = [
    "Durability",
    "ServerDurability",
    "WaitCommand",
    "check_durability",
    "check_wait_reply",
    "durability_refusal",
    "wait_command",
]

WaitCommand = tuple[str | int, ...]
"""A command to send right after the append, on its connection (``("WAIT", 1, 1000)``)."""

_CONFIG_PATTERN = "append*"  # appendonly and appendfsync in one CONFIG GET (6.2 takes one)


def _non_negative_int(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(f"Durability.{attribute.name} must be an int >= 0, got {value!r}")


def _positive_timeout(_instance: object, _attribute: attrs.Attribute[int], value: int) -> None:
    # WAIT/WAITAOF read a timeout of 0 as "block forever": the socket timeout would cut
    # the connection and the caller would not know whether the wait held
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"Durability.timeout_ms must be an int >= 1, got {value!r}")


def _is_bool(_instance: object, _attribute: attrs.Attribute[bool], value: bool) -> None:
    if not isinstance(value, bool):
        raise ConfigurationError(f"Durability.fsync must be a bool, got {value!r}")


@attrs.frozen
class Durability:
    """How long an append waits after the write, on the same connection.

    ``fsync``: the primary's AOF fsynced the write. ``replicas``: that many replicas
    acknowledged it (with ``fsync`` too: fsynced it, Redis 7.2+). ``timeout_ms`` bounds
    the wait; a wait that does not confirm in time raises ``DurabilityError``: the write
    happened and may still persist (re-send the same event ids to make sure). The
    default of 5 s covers ``appendfsync everysec`` (WAITAOF waits for the next fsync, up
    to ~2 s) and replica fsync acknowledgements, which Redis sometimes sends only with its
    once-a-second ``REPLCONF ACK``.

    ::

        Durability.none()                      # the default
        Durability.local_fsync()               # WAITAOF 1 0, or verified appendfsync always
        Durability.on_replicas(2)              # WAIT 2
        Durability.on_replicas(1, fsync=True)  # WAITAOF 1 1 (Redis 7.2+)
    """

    fsync: bool = attrs.field(default=False, validator=_is_bool)
    replicas: int = attrs.field(default=0, validator=_non_negative_int)
    timeout_ms: int = attrs.field(default=5000, validator=_positive_timeout)

    @classmethod
    def none(cls) -> Durability:
        """Return as soon as Redis applied the write (the default)."""
        return cls()

    @classmethod
    def local_fsync(cls, *, timeout_ms: int = 5000) -> Durability:
        """Wait until the primary's AOF fsynced the write."""
        return cls(fsync=True, timeout_ms=timeout_ms)

    @classmethod
    def on_replicas(cls, n: int, *, fsync: bool = False, timeout_ms: int = 5000) -> Durability:
        """Wait until ``n`` replicas acknowledged (``fsync``: and fsynced, with the primary)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigurationError(f"Durability.on_replicas needs n >= 1, got {n!r}")
        return cls(fsync=fsync, replicas=n, timeout_ms=timeout_ms)

    @property
    def waits(self) -> bool:
        """Whether an append with this policy waits (or verifies) after the write."""
        return self.fsync or self.replicas > 0

    @property
    def level(self) -> str:
        """``none``, ``local fsync``, ``2 replicas`` or ``2 replicas + fsync``."""
        if not self.replicas:
            return "local fsync" if self.fsync else "none"
        noun = "replica" if self.replicas == 1 else "replicas"
        return f"{self.replicas} {noun}" + (" + fsync" if self.fsync else "")


@attrs.frozen
class ServerDurability:
    """What a server offers for durability: version and AOF settings (``None``: unknown)."""

    version: tuple[int, ...]
    appendonly: str | None
    appendfsync: str | None

    @property
    def has_waitaof(self) -> bool:
        """``WAITAOF`` exists from Redis 7.2."""
        return self.version >= (7, 2)

    @property
    def describe(self) -> str:
        version = ".".join(str(part) for part in self.version)
        return f"Redis {version}, appendonly={self.appendonly}, appendfsync={self.appendfsync}"


def durability_refusal(wanted: Durability, server: ServerDurability) -> str | None:
    """Why ``server`` cannot honour ``wanted`` (``None`` if it can)."""
    if not wanted.fsync:
        return None  # WAIT exists everywhere; too few replicas shows as a timed-out wait
    if server.appendonly is None or server.appendfsync is None:
        return "CONFIG GET is refused, so appendonly/appendfsync cannot be verified"
    if server.appendonly != "yes":
        return "appendonly is not yes: there is no AOF to fsync (set appendonly yes)"
    if server.has_waitaof:
        return _waitaof_refusal(server)
    return _always_refusal(wanted, server)


def _waitaof_refusal(server: ServerDurability) -> str | None:
    if server.appendfsync == "no":
        return "appendfsync no never fsyncs on its own: WAITAOF would always time out"
    return None


def _always_refusal(wanted: Durability, server: ServerDurability) -> str | None:
    if wanted.replicas:
        return (
            "only WAITAOF (Redis 7.2+) can tell that replicas fsynced the write; use "
            f"Durability.on_replicas({wanted.replicas}) with appendfsync always on every "
            "replica, or upgrade to Redis 7.2+"
        )
    if server.appendfsync != "always":
        return "without WAITAOF (Redis 7.2+) local fsync needs appendfsync always"
    return None


def check_durability(wanted: Durability, servers: Sequence[ServerDurability]) -> None:
    """Raise ``ConfigurationError`` naming the policy and the server if one cannot honour it."""
    for server in servers:
        reason = durability_refusal(wanted, server)
        if reason is not None:
            raise ConfigurationError(
                f"durability {wanted.level!r} (fsync={wanted.fsync}, "
                f"replicas={wanted.replicas}) is not possible on {server.describe}: {reason}"
            )


def wait_command(wanted: Durability, *, waitaof: bool) -> WaitCommand | None:
    """The command to send after the append on its connection (``None``: no wait).

    ``waitaof`` says whether every server of the store has WAITAOF (Redis 7.2+).
    """
    if wanted.fsync and waitaof:
        return ("WAITAOF", 1, wanted.replicas, wanted.timeout_ms)
    if wanted.replicas:
        return ("WAIT", wanted.replicas, wanted.timeout_ms)
    if wanted.fsync:  # verified appendfsync always: the reply came after the fsync
        return ("CONFIG", "GET", _CONFIG_PATTERN)
    return None


def check_wait_reply(stream: str, wanted: Durability, command: WaitCommand, reply: Any) -> None:
    """Raise ``DurabilityError`` unless ``reply`` to ``command`` confirms ``wanted``.

    The write already happened when this runs: every failure says so.
    """
    if isinstance(reply, Exception):
        raise DurabilityError(stream, wanted.level, f"an error from {command[0]}: {reply}")
    name = command[0]
    if name == "WAITAOF":
        local, replicas = (int(value) for value in reply)
        if local < 1 or replicas < wanted.replicas:
            got = f"local fsyncs={local}, replica fsyncs={replicas} in {wanted.timeout_ms} ms"
            raise DurabilityError(stream, wanted.level, got)
    elif name == "WAIT":
        if int(reply) < wanted.replicas:
            raise DurabilityError(
                stream, wanted.level, f"replicas={int(reply)} in {wanted.timeout_ms} ms"
            )
    else:
        _check_always_fsync(stream, wanted, _config_map(reply))


def _config_map(reply: Any) -> dict[str, str]:
    if isinstance(reply, Mapping):
        return {text(key): text(value) for key, value in reply.items()}
    return {text(key): text(value) for key, value in zip(reply[::2], reply[1::2], strict=True)}


def _check_always_fsync(stream: str, wanted: Durability, config: Mapping[str, str]) -> None:
    appendonly, appendfsync = config.get("appendonly"), config.get("appendfsync")
    if appendonly != "yes" or appendfsync != "always":
        got = (
            f"appendonly={appendonly}, appendfsync={appendfsync} (changed since the store "
            "connected: this write was not fsynced before the reply)"
        )
        raise DurabilityError(stream, wanted.level, got)
