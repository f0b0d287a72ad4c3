"""Dedicated connections for blocking readers: the twin of ``eventstore._redis.connections``.

A blocking ``XREAD`` would hold up every call behind it on the multiplexer, so each
subscription gets its own small pool, with a socket timeout above the block time and
redis-py's own retries off (the reader resumes from its checkpoint).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from eventstore._redis.connections import pool_options

__all__ = ["AsyncBlockingReads", "close_dedicated", "dedicated_client"]


def dedicated_client(client: redis.Redis, *, block_seconds: float) -> redis.Redis:
    """A client to the same server as ``client`` with its own pool, for blocking reads."""
    pool = client.connection_pool
    options = pool_options(pool.connection_kwargs, block_seconds)
    options["retry"] = Retry(NoBackoff(), 0)
    own = redis.ConnectionPool(connection_class=pool.connection_class, max_connections=4, **options)
    return redis.Redis(connection_pool=own)


async def close_dedicated(client: redis.Redis) -> None:
    """Close a client made by ``dedicated_client`` and its pool's sockets."""
    await client.aclose()
    await client.connection_pool.disconnect()


class AsyncBlockingReads:
    """Where a consumer group's worker sends its blocking XREADGROUP (single server).

    On a dedicated connection, made on first use: through the multiplexer the block
    would hold up every call of every task behind it. The twin of the sync
    ``BlockingReads``, which blocks on a connection of the store's pool.
    """

    def __init__(self, client: redis.Redis, *, block_ms: int) -> None:
        self._source = client
        self._block_seconds = block_ms / 1000
        self._client: redis.Redis | None = None

    async def send(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """The raw replies to ``commands``, written together on the dedicated connection;
        an error reply raises its ``ResponseError`` once every reply has been read."""
        if self._client is None:
            self._client = dedicated_client(self._source, block_seconds=self._block_seconds)
        pool: Any = self._client.connection_pool  # redis-py leaves get_connection untyped
        connection = await pool.get_connection()
        try:
            replies = await _round_trip(connection, commands)
        except BaseException:
            # cancelled or failed mid-reply: what is left on the wire goes with the socket
            await connection.disconnect(nowait=True)
            raise
        finally:
            await pool.release(connection)
        for reply in replies:
            if isinstance(reply, redis.ResponseError):
                raise reply
        return replies

    async def aclose(self) -> None:
        """Close the dedicated connection (the next ``send`` opens another)."""
        client, self._client = self._client, None
        if client is not None:
            await close_dedicated(client)


async def _round_trip(connection: Any, commands: Sequence[Sequence[Any]]) -> list[Any]:
    await connection.send_packed_command(connection.pack_commands(commands))
    replies: list[Any] = []
    for _ in commands:
        try:
            replies.append(await connection.read_response())
        except redis.ResponseError as exc:  # keep reading: the other replies are on the wire
            replies.append(exc)
    return replies
