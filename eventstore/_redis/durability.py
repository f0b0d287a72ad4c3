"""The optional wait after an append: local fsync (WAITAOF) or replicas (WAIT)."""

from __future__ import annotations

from typing import Any

import attrs
import redis
from redis.commands.core import Script

from eventstore._core.errors import ConfigurationError, DurabilityError
from eventstore._core.records import AppendResult
from eventstore._core.scripts import AppendCall, parse_append_reply
from eventstore._redis.server import ServerInfo

__all__ = ["Durability", "append_and_wait", "check_durability"]


@attrs.frozen
class Durability:
    """How long an append waits after the write, on the same connection.

    ``fsync``: the local AOF has fsynced the write (WAITAOF on Redis 7.2+; older servers
    must run ``appendfsync always``, checked on connect). ``replicas``: that many replicas
    acknowledged it (WAIT). A wait that times out raises ``DurabilityError``: the write
    happened and may still persist.
    """

    fsync: bool = False
    replicas: int = 0
    timeout_ms: int = 1000

    @property
    def waits(self) -> bool:
        return self.fsync or self.replicas > 0


def check_durability(wanted: Durability, server: ServerInfo) -> None:
    """Refuse an fsync policy the server cannot honour."""
    # without AOF there is nothing to fsync (and WAITAOF would fail after the write)
    aof_off = server.appendonly == "no"
    no_wait = not server.has_waitaof and server.appendfsync != "always"
    if wanted.fsync and (aof_off or no_wait):
        raise ConfigurationError(
            f"durability fsync=True needs appendonly yes and WAITAOF (Redis 7.2+) or "
            f"appendfsync always; server {server.version_text} has "
            f"appendonly={server.appendonly}, appendfsync={server.appendfsync}"
        )


def append_and_wait(
    shard: redis.Redis, script: Script, call: AppendCall, wanted: Durability, server: ServerInfo
) -> AppendResult:
    """Run the append script then WAIT/WAITAOF on one connection of ``shard``.

    WAIT/WAITAOF count what happened on *their* connection, so the write goes first on
    the same one (a cluster pipeline refuses EVALSHA: ``shard`` is the node's client).
    """
    reply, acks = _evalsha_and_wait(shard, script, call, wanted, server)
    if isinstance(reply, redis.exceptions.NoScriptError):  # the server lost its scripts
        shard.script_load(script.script)
        reply, acks = _evalsha_and_wait(shard, script, call, wanted, server)
    if isinstance(reply, Exception):
        raise reply
    result = parse_append_reply(call, reply)
    _check_acks(call.stream, wanted, acks)
    return result


def _evalsha_and_wait(
    shard: redis.Redis, script: Script, call: AppendCall, wanted: Durability, server: ServerInfo
) -> tuple[Any, Any]:
    # EVALSHA sent directly: a Script object in a pipeline costs a SCRIPT EXISTS round
    # trip on every execute. A re-send after NOSCRIPT is safe: nothing was written.
    with shard.pipeline(transaction=False) as pipe:
        pipe.evalsha(script.sha, len(call.keys), *call.keys, *call.args)
        if wanted.fsync and server.has_waitaof:
            pipe.execute_command("WAITAOF", 1, wanted.replicas, wanted.timeout_ms)  # type: ignore[no-untyped-call]
        else:
            pipe.execute_command("WAIT", wanted.replicas, wanted.timeout_ms)  # type: ignore[no-untyped-call]
        reply, acks = pipe.execute(raise_on_error=False)
    return reply, acks


def _check_acks(stream: str, wanted: Durability, acks: Any) -> None:
    if isinstance(acks, Exception):
        raise acks
    if isinstance(acks, list):
        local, replicas = int(acks[0]), int(acks[1])
        if (wanted.fsync and local < 1) or replicas < wanted.replicas:
            raise DurabilityError(
                stream,
                f"fsync={wanted.fsync}, replicas={wanted.replicas}",
                f"fsynced={local}, replicas={replicas}",
            )
    elif int(acks) < wanted.replicas:
        raise DurabilityError(stream, f"replicas={wanted.replicas}", f"replicas={acks}")
