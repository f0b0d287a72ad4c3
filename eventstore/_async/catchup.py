# unasync: generates the sync module of the same name
"""``read_ahead_pages``: the catch-up pages of several partitions, reads written ahead.

Each partition is a chain: log page n (``XRANGE``) names the events to fetch (``XREAD``,
see ``fetch_call``) and where log page n + 1 starts. The chain is kept one page ahead
on one connection per server (``AsyncReadAhead``)::

    read log n        -> write "fetch events n", "log page n + 1"
    read events n     -> read log n + 1 -> write "fetch events n + 1", "log page n + 2"
    decode events n, hand the page out      (meanwhile the server reads ahead)

Partitions take turns a page at a time. Replies come back in the order the commands were
written, per connection: a reply read before its page's turn waits in its partition's
queue (at most two pages per partition are in flight).
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

import redis.asyncio as redis

from eventstore._async.io import pass_turn
from eventstore._async.readahead import AsyncReadAhead
from eventstore._async.stored import raise_if_wrong_type
from eventstore._core.codec import version_of_id
from eventstore._core.keys import KeySchema
from eventstore._core.log import FetchCall, FollowedPage, Pointer, fetch_call, iter_fetched

if TYPE_CHECKING:
    from eventstore._async.shards import AsyncRawClients

__all__ = ["raise_refused_fetch", "read_ahead_pages"]


class _LogRead(NamedTuple):
    """A log page written for: partition, position it starts after."""

    partition: int
    after: int


class _EventsRead(NamedTuple):
    """The events of a log page written for, and what the page covered."""

    partition: int
    call: FetchCall
    last_position: int
    scanned: int


class _Ready(NamedTuple):
    """A page whose replies are read; ``call`` is None when no event needs fetching."""

    partition: int
    call: FetchCall | None
    replies: Sequence[Any]
    last_position: int
    scanned: int


class _Lines:
    """One ``AsyncReadAhead`` per server, with what was written on it, in order."""

    def __init__(self, raw: AsyncRawClients) -> None:
        self._raw = raw
        self._lines: dict[int, AsyncReadAhead] = {}
        self._written: dict[int, deque[_LogRead | _EventsRead]] = {}

    def for_key(self, key: str) -> tuple[AsyncReadAhead, deque[_LogRead | _EventsRead]]:
        client = self._raw.for_key(key)
        line = self._lines.get(id(client))
        if line is None:
            line = self._lines[id(client)] = AsyncReadAhead(client)
            self._written[id(client)] = deque()
        return line, self._written[id(client)]

    def close(self) -> None:
        for line in self._lines.values():
            line.close()
        self._lines.clear()


async def read_ahead_pages(
    keys: KeySchema,
    raw: AsyncRawClients,
    cursors: dict[int, int],
    page_size: int,
    pointers: Callable[[int, list[Any]], list[Pointer]],
) -> AsyncGenerator[FollowedPage, None]:
    """Pages of each partition of ``cursors`` (partition -> position to read after), in
    turns, until each has given a page shorter than ``page_size`` (that page included).
    ``pointers(partition, entries)`` parses a log page, filters applied.

    Stopping early (``close()``) disconnects the connections with replies still unread.
    """
    reader = _Reader(keys, raw, page_size, pointers)
    try:
        async for page in reader.pages(cursors):
            yield page
    finally:
        reader.lines.close()


class _Reader:
    """The state of one ``read_ahead_pages``: its lines, and pages read but not handed out."""

    def __init__(
        self,
        keys: KeySchema,
        raw: AsyncRawClients,
        page_size: int,
        pointers: Callable[[int, list[Any]], list[Pointer]],
    ) -> None:
        self.keys = keys
        self.raw = raw
        self.page_size = page_size
        self.pointers = pointers
        self.lines = _Lines(raw)
        self.ready: dict[int, deque[_Ready]] = {}
        # Each partition keeps the line its first read went on: on a cluster the slot map
        # may change meanwhile (a failover, a MOVED met by another call), and replies
        # can only be read where their commands were written. A line to a node that went
        # away fails with a connection error, and the caller starts over from its cursor.
        self._line_of: dict[int, tuple[AsyncReadAhead, deque[_LogRead | _EventsRead]]] = {}

    async def pages(self, cursors: dict[int, int]) -> AsyncGenerator[FollowedPage, None]:
        turns = deque(cursors)
        for partition, after in cursors.items():
            self.ready[partition] = deque()
            self._write_log_read(partition, after)
        while turns:
            partition = turns.popleft()
            page = await self._next_ready(partition)
            await self._read_logs_ahead(partition)  # the server fetches the next events meanwhile
            await pass_turn()  # the reads just queued go out before this page is decoded
            if page.scanned >= self.page_size:
                turns.append(partition)  # its next log page is written for already
            yield await self._decoded(page)

    def _line(self, partition: int) -> tuple[AsyncReadAhead, deque[_LogRead | _EventsRead]]:
        """The line of ``partition``'s reads (the server of its log when first asked)."""
        found = self._line_of.get(partition)
        if found is None:
            found = self._line_of[partition] = self.lines.for_key(self.keys.log(partition))
        return found

    def _write_log_read(self, partition: int, after: int) -> None:
        log = self.keys.log(partition)
        line, written = self._line(partition)
        line.send([("XRANGE", log, f"(0-{after}", "+", "COUNT", self.page_size)])
        written.append(_LogRead(partition, after))

    async def _next_ready(self, partition: int) -> _Ready:
        """Read replies on the partition's line until one of its pages is ready."""
        ready = self.ready[partition]
        line, written = self._line(partition)
        while not ready:
            await self._read_next(line, written)
        return ready.popleft()

    async def _read_logs_ahead(self, partition: int) -> None:
        """Read the log pages already answered behind this one, writing their fetches."""
        line, written = self._line(partition)
        while written and isinstance(written[0], _LogRead):
            await self._read_next(line, written)

    async def _read_next(
        self, line: AsyncReadAhead, written: deque[_LogRead | _EventsRead]
    ) -> None:
        read = written[0]
        if isinstance(read, _LogRead):
            (entries,) = await line.read(1)
            written.popleft()
            await self._on_log_page(read, entries)
        else:
            replies = await line.read(len(read.call.commands))
            written.popleft()
            ready = _Ready(read.partition, read.call, replies, read.last_position, read.scanned)
            self.ready[read.partition].append(ready)

    async def _on_log_page(self, read: _LogRead, entries: Any) -> None:
        partition = read.partition
        log = self.keys.log(partition)
        if isinstance(entries, redis.ResponseError):
            await raise_if_wrong_type(entries, self.raw.for_key(log), {log: "stream"})
            raise entries
        if not entries:
            self.ready[partition].append(_Ready(partition, None, (), read.after, 0))
            return
        pointers = self.pointers(partition, entries)
        last, scanned = version_of_id(entries[-1][0]), len(entries)
        if pointers:
            call = fetch_call(pointers)
            line, written = self._line(partition)  # the events share the log's slot
            line.send(call.commands)
            written.append(_EventsRead(partition, call, last, scanned))
        else:  # every entry filtered out: nothing to fetch, the page still moves the cursor
            self.ready[partition].append(_Ready(partition, None, (), last, scanned))
        if scanned >= self.page_size:
            self._write_log_read(partition, last)

    async def _decoded(self, page: _Ready) -> FollowedPage:
        call = page.call
        if call is None:
            return FollowedPage(page.partition, (), page.last_position, page.scanned)
        for reply in page.replies:
            if isinstance(reply, redis.ResponseError):
                await raise_refused_fetch(reply, self.raw, call.pointers)
        events = iter_fetched(call, page.replies)  # decoded as the consumer takes them
        return FollowedPage(page.partition, events, page.last_position, page.scanned)


async def raise_refused_fetch(
    exc: redis.ResponseError, raw: AsyncRawClients, pointers: Sequence[Pointer]
) -> NoReturn:
    """The error reply to fetching ``pointers``' events: ``StoredDataError`` naming the key
    of the wrong type if that is what it was, else the reply itself."""
    streams = dict.fromkeys((pointer.stream for pointer in pointers), "stream")
    await raise_if_wrong_type(exc, raw.for_key(pointers[0].stream), streams)
    raise exc
