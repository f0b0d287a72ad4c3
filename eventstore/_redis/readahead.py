"""``ReadAhead``: commands written to one connection ahead of reading their replies.

Catch-up is a chain of reads where each needs the one before: a log page names the
events to fetch and where the next page starts. ``send_batch`` (and redis-py's pipeline)
waits for every reply of a batch, so client and server take turns: the server idles
while the client decodes a page, the client idles while the server builds the next.
Here a command is written as soon as its arguments are known and its replies are read
when they are needed, so the server builds page n + 1 while the client decodes page n
(on two cores, measured in ``docs/performance.md``, workload 7).

A connection is taken from the client's pool for as long as the reader lives. ``close``
gives it back; one with replies still unread (the reader stopped early, or a read
failed halfway) is disconnected first, so no later command can read a stale reply.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis

__all__ = ["ReadAhead"]


class ReadAhead:
    """One pooled connection of ``client``: ``send`` commands now, ``read`` replies later."""

    def __init__(self, client: redis.Redis) -> None:
        self._pool = client.connection_pool
        self._connection: Any = self._pool.get_connection()  # redis-py leaves it untyped
        self._unread = 0

    @property
    def unread(self) -> int:
        """Replies written for and not read yet."""
        return self._unread

    def send(self, commands: Sequence[Sequence[Any]]) -> None:
        """Write ``commands`` without waiting for their replies."""
        self._unread += len(commands)  # counted first: a failed write leaves the count up
        self._connection.send_packed_command(self._connection.pack_commands(commands))

    def read(self, count: int) -> list[Any]:
        """The next ``count`` replies, raw; an error reply is returned, not raised."""
        if count > self._unread:
            raise ValueError(f"{count} replies asked for, {self._unread} unread")
        replies: list[Any] = []
        for _ in range(count):
            try:
                replies.append(self._connection.read_response())
            except redis.ResponseError as exc:  # a whole reply was read: the line is in step
                replies.append(exc)
            self._unread -= 1
        return replies

    def close(self) -> None:
        """Give the connection back to the pool (disconnected if replies are unread)."""
        if self._unread:
            self._connection.disconnect()
            self._unread = 0
        self._pool.release(self._connection)
