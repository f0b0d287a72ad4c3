"""Dedicated connections for blocking readers: the twin of ``eventstore._redis.connections``.

A blocking ``XREAD`` would hold up every call behind it on the multiplexer, so each
subscription gets its own small pool, with a socket timeout above the block time and
redis-py's own retries off (the reader resumes from its checkpoint).
"""

from __future__ import annotations

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from eventstore._redis.connections import pool_options

__all__ = ["close_dedicated", "dedicated_client"]


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
