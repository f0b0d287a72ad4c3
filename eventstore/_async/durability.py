# unasync: generates the sync module of the same name
"""Sending an append: the script call, the durability wait after it on the same
connection, and the server's refusals turned into typed errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import redis.asyncio as redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from eventstore._async.clients import shard_client
from eventstore._core.durability import (
    Durability,
    ServerDurability,
    WaitCommand,
    check_wait_reply,
    wait_command,
)
from eventstore._core.durability import check_durability as _check_durability
from eventstore._core.errors import OutOfMemory
from eventstore._core.records import AppendResult
from eventstore._core.scripts import AppendCall, parse_append_reply
from eventstore._core.server import ServerInfo

__all__ = ["Durability", "check_durability", "run_append", "supports_waitaof"]


def check_durability(wanted: Durability, servers: Sequence[ServerInfo]) -> None:
    """Raise ``ConfigurationError`` if a server of the store cannot honour ``wanted``."""
    _check_durability(
        wanted,
        [ServerDurability(info.version, info.appendonly, info.appendfsync) for info in servers],
    )


def supports_waitaof(servers: Sequence[ServerInfo]) -> bool:
    """Whether every server has WAITAOF (a cluster may mix versions during an upgrade)."""
    return all(info.has_waitaof for info in servers)


async def run_append(
    client: redis.Redis, script: AsyncScript, call: AppendCall, wanted: Durability, *, waitaof: bool
) -> AppendResult:
    """Run the append script, then the wait ``wanted`` asks for, on one connection.

    A server out of memory (``maxmemory`` with ``noeviction``) raises ``OutOfMemory``:
    Redis refuses only a script's *first* write, so nothing of the batch was written.
    """
    command = wait_command(wanted, waitaof=waitaof)
    try:
        if command is None:
            return parse_append_reply(call, await script(keys=call.keys, args=call.args))
        return await _append_and_wait(
            shard_client(client, call.stream), script, call, wanted, command
        )
    except redis.ResponseError as exc:
        if _out_of_memory(exc):
            raise OutOfMemory(call.stream, str(exc)) from exc
        raise


async def _append_and_wait(
    shard: redis.Redis,
    script: AsyncScript,
    call: AppendCall,
    wanted: Durability,
    command: WaitCommand,
) -> AppendResult:
    # WAIT/WAITAOF count what happened on *their* connection, so the write goes first on
    # the same one (a cluster pipeline refuses EVALSHA: ``shard`` is the node's client)
    reply, after = await _evalsha_then(shard, script, call, command)
    if isinstance(reply, NoScriptError):  # the server lost its scripts
        await shard.script_load(script.script)
        reply, after = await _evalsha_then(shard, script, call, command)
    if isinstance(reply, Exception):
        raise reply
    result = parse_append_reply(call, reply)
    check_wait_reply(call.stream, wanted, command, after)
    return result


async def _evalsha_then(
    shard: redis.Redis, script: AsyncScript, call: AppendCall, command: WaitCommand
) -> tuple[Any, Any]:
    # EVALSHA sent directly: a Script object in a pipeline costs a SCRIPT EXISTS round
    # trip on every execute. A re-send after NOSCRIPT is safe: nothing was written.
    if command[0] == "WAITAOF" and command[2]:
        return await _evalsha_then_apart(shard, script, call, command)
    async with shard.pipeline(transaction=False) as pipe:
        pipe.evalsha(script.sha, len(call.keys), *call.keys, *call.args)
        cast(Any, pipe).execute_command(*command)  # redis-py leaves it untyped
        reply, after = await pipe.execute(raise_on_error=False)
    return reply, after


async def _evalsha_then_apart(
    shard: redis.Redis, script: AsyncScript, call: AppendCall, command: WaitCommand
) -> tuple[Any, Any]:
    # Pipelined, the replica gets the write and the primary's GETACK in one read and
    # answers before its own fsync: the fsync is then only reported by its once-a-second
    # REPLCONF ACK (measured: WAITAOF 1 1 took ~1 s per append). One more round trip
    # lets the replica fsync first (~1 ms). Same connection: WAITAOF counts its writes.
    single: redis.Redis = cast(Any, shard).client()
    try:
        try:
            reply = await single.evalsha(script.sha, len(call.keys), *call.keys, *call.args)
        except redis.ResponseError as exc:  # NOSCRIPT, OOM...: nothing was written
            return exc, None
        try:
            return reply, await cast(Any, single).execute_command(*command)
        except redis.ResponseError as exc:  # checked (and reported) after the append
            return reply, exc
    finally:
        await single.aclose()


def _out_of_memory(exc: redis.ResponseError) -> bool:
    # 7.x replies "-OOM ..." (redis-py: OutOfMemoryError); 6.2 wraps it in a script error
    return "used memory > 'maxmemory'" in str(exc)
