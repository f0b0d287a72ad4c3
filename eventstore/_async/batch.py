"""``send_batch``: a few commands in one round trip, through the server's multiplexer.

The twin of ``eventstore._redis.batch``: replies come as hiredis parses them (no redis-py
response callbacks), and an error reply raises its ``ResponseError`` once every reply has
been read. Concurrent calls share the round trips (see ``mux``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as redis

from eventstore._async.mux import multiplexer

__all__ = ["send_batch"]


async def send_batch(client: redis.Redis, commands: Sequence[Sequence[Any]]) -> list[Any]:
    """The replies to ``commands``, sent together on ``client``'s shared connection."""
    replies = await multiplexer(client).execute(commands)
    for reply in replies:
        if isinstance(reply, redis.ResponseError):
            raise reply
    return replies
