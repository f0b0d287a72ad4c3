"""Dedicated connections for blocking readers.

A blocking XREAD holds its connection for the whole block time, so each subscription gets
its own small pool instead of borrowing from the store's. Its socket timeout is set above
the block time (or redis-py would time out and retry the read by itself), and redis-py's
own retries are off: the reader reconnects with backoff and resumes from its checkpoint,
which is the only retry that is safe for a position-based read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from eventstore._core.errors import ConfigurationError
from eventstore._redis.batch import send_batch

__all__ = ["BlockingReads", "close_dedicated", "dedicated_client", "pool_options"]

# Internal bookkeeping redis-py adds to a pool's kwargs; a new pool makes its own.
_POOL_INTERNALS = frozenset(
    {"maint_notifications_pool_handler", "himport_registry", "retry", "maint_notifications_config"}
)


def dedicated_client(client: redis.Redis, *, block_seconds: float) -> redis.Redis:
    """A client to the same server as ``client`` with its own pool, for blocking reads."""
    pool = client.connection_pool
    options = pool_options(pool.connection_kwargs, block_seconds)
    options["retry"] = Retry(NoBackoff(), 0)
    own = redis.ConnectionPool(connection_class=pool.connection_class, max_connections=4, **options)
    return redis.Redis(connection_pool=own)


def pool_options(kwargs: dict[str, Any], block_seconds: float) -> dict[str, Any]:
    """A pool's connection options for a dedicated pool whose reads block ``block_seconds``:
    the socket timeout above the block time, no health checks (a blocked read is one)."""
    options = {
        name: value
        for name, value in kwargs.items()
        if not name.startswith("orig_") and name not in _POOL_INTERNALS
    }
    options["socket_timeout"] = max(float(options.get("socket_timeout") or 0), block_seconds + 10)
    options["health_check_interval"] = 0
    return options


def close_dedicated(client: redis.Redis) -> None:
    """Close a client made by ``dedicated_client`` and its pool's sockets."""
    client.close()
    client.connection_pool.disconnect()


class BlockingReads:
    """Where a consumer group's worker sends its blocking XREADGROUP (single server).

    On a connection of the store's pool, held for the block time. The pool's socket
    timeout must exceed that block time (``ConfigurationError`` otherwise): redis-py
    would time the read out and silently retry it. The async twin blocks on a
    dedicated connection instead (its multiplexer's connection is shared).
    """

    def __init__(self, client: redis.Redis, *, block_ms: int) -> None:
        timeout = client.connection_pool.connection_kwargs.get("socket_timeout")
        if timeout is not None and float(timeout) * 1000 <= block_ms:
            raise ConfigurationError(
                f"socket_timeout {timeout}s must exceed the worker's block time "
                f"{block_ms} ms: a timed-out blocking read is retried by redis-py"
            )
        self._client = client

    def send(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """The raw replies to ``commands``, written together on a pooled connection."""
        return send_batch(self._client, commands)

    def close(self) -> None:
        """Nothing held between reads: each borrows a pooled connection."""
