"""``AsyncReadAhead``: commands written ahead of reading their replies.

The twin of ``eventstore._redis.readahead``. Over the multiplexer, writing now and reading
later is a future per send: ``send`` queues the commands (written in the loop's next
batch), ``read`` awaits their replies in order. ``close`` cancels what is unread; the
multiplexer still reads those replies off the wire and drops them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import Any

import redis.asyncio as redis

from eventstore._async.mux import multiplexer

__all__ = ["AsyncReadAhead"]


class AsyncReadAhead:
    """``send`` commands now, ``read`` their replies later, on ``client``'s multiplexer."""

    def __init__(self, client: redis.Redis) -> None:
        self._mux = multiplexer(client)
        self._sent: deque[asyncio.Future[list[Any]]] = deque()
        self._replies: deque[Any] = deque()
        self._unread = 0

    @property
    def unread(self) -> int:
        """Replies written for and not read yet."""
        return self._unread

    def send(self, commands: Sequence[Sequence[Any]]) -> None:
        """Queue ``commands`` without waiting for their replies."""
        self._sent.append(self._mux.submit(commands))
        self._unread += len(commands)

    async def read(self, count: int) -> list[Any]:
        """The next ``count`` replies, raw; an error reply is returned, not raised."""
        if count > self._unread:
            raise ValueError(f"{count} replies asked for, {self._unread} unread")
        while len(self._replies) < count:
            future = self._sent[0]
            replies = await future
            self._sent.popleft()
            self._replies.extend(replies)
        self._unread -= count
        return [self._replies.popleft() for _ in range(count)]

    def close(self) -> None:
        """Drop what is unread (its replies are read off the wire and discarded)."""
        for future in self._sent:
            future.cancel()
        self._sent.clear()
        self._replies.clear()
        self._unread = 0
