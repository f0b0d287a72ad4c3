"""``Multiplexer``: the commands of many tasks written together on one connection.

Every call hands its commands to the server's multiplexer and awaits a future. Calls made
in the same turn of the event loop are written in one batch when the loop next runs the
writer (auto-pipelining, as ioredis and coredis do); one reader reads the replies in the
order they were written and hands each call its own. A lone call still costs one round
trip; many concurrent calls share round trips, which is how a framework gets more out of
one connection than a naive client taking a pooled connection per call. Batches are
packed by hiredis in C and the replies hiredis already holds are handed out directly
(``_pack``, ``_reply``): redis.asyncio packs in Python and arms a timer for every reply,
which was most of the multiplexer's own time per call.

Cancellation cannot put the connection out of step: a call cancelled before its batch is
written is left out of it; one cancelled after is still read, and its replies dropped.
A connection error on a call written and not yet answered (it may or may not have run:
appends are idempotent, reads harmless) re-sends it on a new connection as the client's
``retry`` policy says, as redis-py re-sends a command; once that is spent the call fails
with the error. Blocking commands (``XREAD BLOCK``) never come here: they hold a
connection of their own.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import redis.asyncio as redis
from redis._parsers.hiredis import NOT_ENOUGH_DATA as _NOT_ENOUGH_DATA
from redis._parsers.hiredis import _AsyncHiredisParser

__all__ = ["Multiplexer", "multiplexer"]

_MUXES: weakref.WeakKeyDictionary[Any, Multiplexer] = weakref.WeakKeyDictionary()


def multiplexer(client: redis.Redis) -> Multiplexer:
    """The multiplexer of ``client``'s pool (one per pool, made on first use)."""
    pool = client.connection_pool
    mux = _MUXES.get(pool)
    if mux is None:
        mux = _MUXES[pool] = Multiplexer(pool)
    return mux


class _Call:
    __slots__ = ("commands", "count", "failures", "future")

    def __init__(
        self, commands: Sequence[Sequence[Any]], future: asyncio.Future[list[Any]]
    ) -> None:
        self.commands = commands
        self.count = len(commands)
        self.future = future
        self.failures = 0


class Multiplexer:
    """One connection of ``pool``, shared by every task that calls ``execute``."""

    def __init__(self, pool: redis.ConnectionPool) -> None:
        self._pool: Any = pool  # redis-py leaves get_connection untyped
        self._connection: Any = None  # redis-py leaves its connections untyped
        self._queued: list[tuple[Sequence[Sequence[Any]], _Call]] = []
        self._written: deque[_Call] = deque()
        self._writer: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._reading: Any = None  # the connection the reader reads
        self._closed = False
        self.batches = 0
        """Batches written so far (each one write of the calls queued in one loop turn)."""

    async def execute(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """The replies to ``commands``, in order; error replies are returned, not raised."""
        return await self.submit(commands)

    def submit(self, commands: Sequence[Sequence[Any]]) -> asyncio.Future[list[Any]]:
        """Queue ``commands`` for the next batch; the future gets their replies."""
        if self._closed:
            raise redis.ConnectionError("the store was closed")
        loop = asyncio.get_running_loop()
        call = _Call(commands, loop.create_future())
        self._queue(call)
        return call.future

    def _queue(self, call: _Call) -> None:
        if call.future.done():
            return
        if self._closed:
            _fail(call, redis.ConnectionError("the store was closed"))
            return
        self._queued.append((call.commands, call))
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write())

    @property
    def in_flight(self) -> int:
        """Calls written and not answered yet, plus calls queued."""
        return len(self._written) + len(self._queued)

    async def _write(self) -> None:
        try:
            while self._queued:
                batch, self._queued = self._queued, []
                batch = [(commands, call) for commands, call in batch if not call.future.done()]
                if batch:
                    await self._write_batch(batch)
        finally:
            self._writer = None

    async def _write_batch(self, batch: list[tuple[Sequence[Sequence[Any]], _Call]]) -> None:
        try:
            connection = await self._connected()
            packed = _pack(connection, [c for commands, _ in batch for c in commands])
        except BaseException as exc:  # noqa: BLE001 (each caller gets it; a cancel re-raised)
            for _, call in batch:
                _fail(call, exc)
            raise_if_cancelled(exc)
            return
        # counted as written before the write: a failed write fails them with the rest
        self._written.extend(call for _, call in batch)
        if self._reader is None or self._reading is not connection:
            self._reading = connection
            self._reader = asyncio.get_running_loop().create_task(self._read(connection))
        self.batches += 1
        try:
            connection._writer.writelines(packed)
            await connection._writer.drain()
        except BaseException as exc:  # noqa: BLE001 (each caller gets it; a cancel re-raised)
            await self._broken(connection, _as_connection_error(exc))
            raise_if_cancelled(exc)

    async def _connected(self) -> Any:
        connection = self._connection
        if connection is not None and not self._written and await _stale(connection):
            await self._drop(connection)
            connection = None
        if connection is None:
            connection = self._connection = await self._pool.get_connection()
        return connection

    async def _read(self, connection: Any) -> None:
        try:
            while self._written and self._connection is connection:
                call = self._written[0]
                replies = [await _reply(connection) for _ in range(call.count)]
                if self._written and self._written[0] is call:
                    self._written.popleft()
                if not call.future.done():
                    call.future.set_result(replies)
        except BaseException as exc:  # noqa: BLE001 (each caller gets it; a cancel re-raised)
            await self._broken(connection, _as_connection_error(exc))
            raise_if_cancelled(exc)
        finally:
            if self._reader is asyncio.current_task():
                self._reader = None

    async def _broken(self, connection: Any, exc: BaseException) -> None:
        """Re-send (or fail) every call written on ``connection``; the next batch
        connects again."""
        if self._connection is not connection:
            return
        failed, self._written = self._written, deque()
        retry = getattr(connection, "retry", None)
        for call in failed:
            self._retry_or_fail(call, exc, retry)
        await self._drop(connection)

    def _retry_or_fail(self, call: _Call, exc: BaseException, retry: Any) -> None:
        call.failures += 1
        retryable = isinstance(exc, redis.ConnectionError | redis.TimeoutError)
        if retry is None or not retryable or call.failures > retry.get_retries():
            _fail(call, exc)
            return
        delay = retry._backoff.compute(call.failures)
        asyncio.get_running_loop().call_later(delay, self._queue, call)

    async def _drop(self, connection: Any) -> None:
        self._connection = None
        try:
            await connection.disconnect(nowait=True)
        finally:
            await self._pool.release(connection)

    async def aclose(self) -> None:
        """Fail what is still queued or unanswered and give the connection back."""
        self._closed = True
        closed = redis.ConnectionError("the store was closed")
        for _, call in self._queued:
            _fail(call, closed)
        self._queued = []
        if self._connection is not None:
            await self._broken(self._connection, closed)
        for task in (self._writer, self._reader):
            if task is not None and task is not asyncio.current_task():
                task.cancel()


async def close_multiplexer(client: redis.Redis) -> None:
    """Close the multiplexer of ``client``'s pool, if it has one."""
    mux = _MUXES.pop(client.connection_pool, None)
    if mux is not None:
        await mux.aclose()


async def _stale(connection: Any) -> bool:
    """What the pool checks before handing a connection out: something to read while
    idle means the server closed it (a kill, a timeout, a restart) or it is out of step."""
    try:
        return bool(await connection.can_read())
    except (redis.ConnectionError, OSError):
        return True


def _hiredis_packer() -> Callable[[tuple[Any, ...]], bytes] | None:
    try:  # redis[hiredis] is a dependency: without hiredis, redis-py packs and parses
        from hiredis import pack_command
    except ImportError:  # pragma: no cover
        return None
    return pack_command


_pack_command = _hiredis_packer()


def _pack(connection: Any, commands: Sequence[Sequence[Any]]) -> list[bytes]:
    """``commands`` in the Redis protocol, packed by hiredis in C as redis-py's sync client
    packs them, byte for byte; redis.asyncio packs in Python (~13 us for an append's
    EVALSHA, ~2 us in C). A command hiredis refuses (a bytearray or memoryview argument,
    or a type redis-py refuses too), a command name with a space in it ("CONFIG GET"), or
    a client that does not encode text as strict UTF-8 is packed by redis-py."""
    encoder = connection.encoder
    if _pack_command is None or encoder.encoding_errors != "strict" or not _utf8(encoder):
        packed: list[bytes] = connection.pack_commands(commands)
        return packed
    packed = []
    for command in commands:
        name = command[0]
        if isinstance(name, str) and " " not in name:
            try:
                packed.append(_pack_command(command if type(command) is tuple else tuple(command)))
                continue
            except TypeError:
                pass  # redis-py packs it, or raises its own DataError
        packed.extend(connection.pack_command(*command))
    return packed


def _utf8(encoder: Any) -> bool:
    return str(encoder.encoding).lower().replace("-", "").replace("_", "") == "utf8"


async def _reply(connection: Any) -> Any:
    """The next reply on ``connection``; an error reply is returned as its exception.

    A reply hiredis already holds whole (every reply of a batch after the first, most
    often) is taken from it directly, as redis-py's parser takes it: redis.asyncio's
    ``read_response`` arms and cancels a timer for every reply (~5 us), and there is no
    wait here to time. Anything else is read by ``read_response``, with its timeout."""
    parser: Any = connection._parser
    if type(parser) is _AsyncHiredisParser and parser._connected:
        reader: Any = parser._reader  # hiredis's Reader, fed by redis-py's parser
        reply = reader.gets()
        if reply is not _NOT_ENOUGH_DATA:
            # what redis-py's parser does with a reply before handing it out
            if isinstance(reply, redis.ConnectionError):
                raise reply
            if isinstance(reply, list) and reply and isinstance(reply[0], redis.ConnectionError):
                raise reply[0]
            push = parser._hiredis_PushNotificationType
            if push is not None and isinstance(reply, push):
                await parser.handle_push_response(reply)
                return await _reply(connection)
            return reply
    try:
        return await connection.read_response()
    except redis.ResponseError as exc:  # a whole reply: still in step
        return exc


def _fail(call: _Call, exc: BaseException) -> None:
    if not call.future.done():
        if isinstance(exc, asyncio.CancelledError):
            exc = redis.ConnectionError("the write was cancelled")
        call.future.set_exception(exc)


def _as_connection_error(exc: BaseException) -> BaseException:
    if isinstance(exc, redis.RedisError | asyncio.CancelledError):
        return exc
    if isinstance(exc, OSError | EOFError):
        return redis.ConnectionError(f"connection lost: {exc}")
    return exc


def raise_if_cancelled(exc: BaseException) -> None:
    """Re-raise a cancellation of the writer or reader task itself."""
    if isinstance(exc, asyncio.CancelledError):
        raise exc
