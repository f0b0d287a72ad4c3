"""Raw redis.asyncio doing workload 11's Redis work with no framework.

- ``NaiveAppends``: what an application does without a framework: one ``await
  client.evalsha(...)`` of workload 1's minimal append script (``APPEND_CEILING_SCRIPT``)
  per append, on a client of its own whose pool holds a connection per task (redis.asyncio's
  default pool refuses more than 100).
- ``HeldConnection``: the ceiling. N appends from N tasks become, at best, one write of
  N EVALSHAs and one read of their N replies on one connection held throughout, packed by
  hiredis as redis-py's sync client packs (redis.asyncio packs in Python); one task's
  append, one EVALSHA written and its reply read there.
- ``typed_catch_up``: workload 7's typed ceiling (``TypedPages``) on redis.asyncio.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import hiredis
import redis.asyncio as aioredis

from benchmarks._measure import Figures, percentile
from benchmarks._raw import APPEND_CEILING_SCRIPT
from benchmarks._typed_pages import TypedPages

__all__ = [
    "WARMUP",
    "Append",
    "HeldConnection",
    "NaiveAppends",
    "figures",
    "pack",
    "typed_catch_up",
]

Append = Callable[[int], Awaitable[object]]
"""Appends one event to its aggregate at the given expected version."""

DATA = json.dumps({"amount": 1})
WARMUP = 2  # untimed appends per task, thread or round first: connections made, caches warm


def figures(count: int, seconds: float, latencies: Sequence[float]) -> Figures:
    """Appends per second, and the p50 and p99 latency of one append (us)."""
    return {
        "rate": count / seconds,
        "p50": percentile(latencies, 50) * 1e6,
        "p99": percentile(latencies, 99) * 1e6,
    }


def pack(commands: Sequence[Sequence[Any]]) -> bytes:
    """``commands`` in the Redis protocol, packed by hiredis."""
    return b"".join(hiredis.pack_command(tuple(command)) for command in commands)


def _args(version: int, pointer: str) -> tuple[Any, ...]:
    """The script's arguments: a fresh event id and time per append, the payload encoded
    once (as workload 1's ceiling)."""
    now_ms = int(time.time() * 1000)
    return (version, "BenchDeposited", 1, str(uuid.uuid4()), now_ms, DATA, pointer)


def _check(reply: Any) -> None:
    if not isinstance(reply, list) or reply[0] != b"ok":
        raise RuntimeError(f"the raw append was refused: {reply!r}")


class NaiveAppends:
    """One ``await client.evalsha(...)`` per append; ``append_to()`` a fresh aggregate."""

    def __init__(self, url: str, key: Callable[[str], str], tasks: int) -> None:
        self.client = aioredis.Redis.from_url(url, socket_timeout=60, max_connections=tasks)
        self._key = key
        self._log, self._position = key("log"), key("pos")
        self._sha = ""

    async def open(self) -> NaiveAppends:
        """Load the script (once)."""
        self._sha = await self.client.script_load(APPEND_CEILING_SCRIPT)
        return self

    def append_to(self) -> Append:
        """Appends to a new stream of its own (its own aggregate), sharing the log."""
        client, sha = self.client, self._sha
        keys = (self._key("stream"), self._log, self._position)
        pointer = f"BenchAccount:{uuid.uuid4()}"

        async def append(version: int) -> None:
            _check(await client.evalsha(sha, 3, *keys, *_args(version, pointer)))

        return append

    async def aclose(self) -> None:
        """Close the client and its pool."""
        await self.client.aclose()
        await self.client.connection_pool.disconnect()


class HeldConnection:
    """The ceiling's appends: EVALSHAs of the minimal script written straight on one
    connection held throughout (``open()`` first), replies read raw."""

    def __init__(self, url: str, key: Callable[[str], str]) -> None:
        self.client = aioredis.Redis.from_url(url, socket_timeout=60)
        self._key = key
        self._log, self._position = key("log"), key("pos")
        self._sha = ""
        self._connection: Any = None

    async def open(self) -> HeldConnection:
        """Load the script and take the connection."""
        self._sha = await self.client.script_load(APPEND_CEILING_SCRIPT)
        pool: Any = self.client.connection_pool  # redis-py leaves get_connection untyped
        self._connection = await pool.get_connection()
        return self

    def _command(self, stream: str, pointer: str, version: int) -> tuple[Any, ...]:
        return (
            "EVALSHA",
            self._sha,
            3,
            stream,
            self._log,
            self._position,
            *_args(version, pointer),
        )

    def append_to(self) -> Append:
        """One EVALSHA written and its reply read per append, to a new aggregate's stream."""
        stream, pointer, connection = (
            self._key("stream"),
            f"BenchAccount:{uuid.uuid4()}",
            self._connection,
        )

        async def append(version: int) -> None:
            await connection.send_packed_command(
                pack([self._command(stream, pointer, version)]), check_health=False
            )
            _check(await connection.read_response())

        return append

    async def rounds(self, tasks: int, rounds: int) -> Figures:
        """``rounds`` rounds of ``tasks`` appends (each to an aggregate of its own), every
        round one write and one read; latency is a round's."""
        streams = [(self._key("stream"), f"BenchAccount:{uuid.uuid4()}") for _ in range(tasks)]
        connection = self._connection

        async def round_trip(version: int) -> None:
            commands = [self._command(stream, pointer, version) for stream, pointer in streams]
            await connection.send_packed_command(pack(commands), check_health=False)
            for _ in streams:
                _check(await connection.read_response())

        for version in range(WARMUP):
            await round_trip(version)
        latencies = []
        start = time.perf_counter()
        for version in range(WARMUP, WARMUP + rounds):
            began = time.perf_counter()
            await round_trip(version)
            latencies.append(time.perf_counter() - began)
        return figures(tasks * rounds, time.perf_counter() - start, latencies)

    async def aclose(self) -> None:
        """Give the connection back and close the client."""
        if self._connection is not None:
            pool: Any = self.client.connection_pool
            await pool.release(self._connection)
        await self.client.aclose()
        await self.client.connection_pool.disconnect()


async def typed_catch_up(client: aioredis.Redis, pages: TypedPages, total: int) -> int:
    """Workload 7's typed ceiling on one redis.asyncio connection: the next page's reads
    written before this page's events are validated; how many events were validated."""
    seen = 0
    pool: Any = client.connection_pool  # redis-py leaves get_connection untyped
    connection: Any = await pool.get_connection()  # replies read raw
    try:

        async def write_next(page: list[Any]) -> tuple[Any, bool] | None:
            if not page:
                return None
            commands, spans, more = pages.next_reads(page)
            await connection.send_packed_command(pack(commands), check_health=False)
            return spans, more

        await connection.send_packed_command(pack([pages.log_page(0)]), check_health=False)
        pending = await write_next(await connection.read_response())
        while pending is not None:
            spans, more = pending
            reply = await connection.read_response()
            page = await connection.read_response() if more else []
            # written ahead: the server reads page n + 1 while page n is validated
            pending = await write_next(page)
            seen += pages.validate(reply, spans)
    finally:
        await pool.release(connection)
    if seen != total:
        raise RuntimeError(f"the asyncio ceiling read {seen} of {total} events")
    return seen
