"""The multiplexer's wire work: hiredis packs what redis-py would pack, byte for byte, and
replies taken straight from hiredis are the replies redis-py would have handed out."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from redis.connection import HiredisRespSerializer

from eventstore._async.batch import send_batch
from eventstore._async.mux import _pack, multiplexer

COMMANDS: list[Sequence[Any]] = [
    ("EVALSHA", "a" * 40, 3, "{ns:p0}:a:T:x", "{ns:p0}:log", "{ns:p0}:pos", "7", 1.5),
    ("XRANGE", "k", "(0-1", "+", "COUNT", 1000),
    ("SET", b"\x00\xffbytes", "caf\u00e9 \u2603", 0.1, -3, 10**20),
    ("XADD", "k", "*", "d", bytearray(b"from a bytearray"), "m", memoryview(b"a view")),
    ("CONFIG GET", "maxmemory"),  # redis-py splits a command name with a space
    ["LPUSH", "list", "x"],  # a list, not a tuple
]


def test_pack_writes_what_redis_py_writes() -> None:
    connection = aioredis.Connection()
    expected = b"".join(connection.pack_commands(COMMANDS))
    assert b"".join(_pack(connection, COMMANDS)) == expected
    # what redis-py's sync client sends (typed from redis-py 8.2 on)
    sync = HiredisRespSerializer()  # type: ignore[no-untyped-call, unused-ignore]
    assert b"".join(b"".join(sync.pack(*command)) for command in COMMANDS) == expected


def test_pack_refuses_what_redis_py_refuses() -> None:
    connection = aioredis.Connection()
    for value in (True, None, object()):
        with pytest.raises(redis.DataError):
            _pack(connection, [("SET", "k", value)])


def test_pack_leaves_other_encodings_to_redis_py() -> None:
    connection = aioredis.Connection(encoding="latin-1")
    command = [("SET", "k", "caf\u00e9")]
    assert _pack(connection, command) == connection.pack_commands(command)
    assert b"caf\xe9" in b"".join(_pack(connection, command))


def test_replies_of_one_batch_come_back_in_order_with_their_errors(redis_url: str) -> None:
    async def main() -> None:
        client = aioredis.Redis.from_url(redis_url)
        try:
            await client.set("text", "not a number")
            big = "x" * 300_000  # spans many socket reads
            mux = multiplexer(client)
            calls: list[list[tuple[Any, ...]]] = [
                [("SET", "big", big), ("GET", "big")],
                [("INCR", "text"), ("ECHO", "after the error")],
                [("EVALSHA", "0" * 40, 0)],
                [("PING",)],
            ]
            before = mux.batches
            replies = await asyncio.gather(*(mux.execute(commands) for commands in calls))
            assert mux.batches - before == 1
            (ok, got), (failed, echoed), (missing,), (pong,) = replies
            assert (ok, got, echoed, pong) == (b"OK", big.encode(), b"after the error", b"PONG")
            assert isinstance(failed, redis.ResponseError)
            assert isinstance(missing, redis.exceptions.NoScriptError)
            with pytest.raises(redis.ResponseError, match="not an integer"):
                await send_batch(client, [("INCR", "text")])
            assert await send_batch(client, [("GET", "text")]) == [b"not a number"]
        finally:
            await client.aclose()

    asyncio.run(main())
