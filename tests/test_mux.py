"""The async front's multiplexer: calls of one loop turn share a write, every call gets
its own reply, and cancellation or a killed connection never puts replies out of step."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any, cast

import pytest
import redis
import redis.asyncio as aioredis

from eventstore import AsyncEventStore, ConcurrencyError, RecordedEvent
from eventstore._async.batch import send_batch
from eventstore._async.mux import multiplexer
from tests.domain import Deposited


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())  # type: ignore[arg-type]


def test_calls_of_one_turn_are_written_together(redis_url: str, namespace: str) -> None:
    async def main() -> None:
        async with await AsyncEventStore.from_url(redis_url, namespace=namespace) as store:
            await store.version_of("A", "warm-up")
            mux = multiplexer(store._raw.for_key(store.keys.stream("A", "x")))
            before = mux.batches
            versions = await asyncio.gather(*(store.version_of("A", f"a{i}") for i in range(100)))
            assert versions == [0] * 100
            assert mux.batches - before == 1  # one write for the hundred calls
            before = mux.batches
            await store.version_of("A", "alone")
            assert mux.batches - before == 1

    run(main)


async def _echo(client: aioredis.Redis, token: str) -> None:
    (reply,) = await send_batch(client, [("ECHO", token)])
    assert reply == token.encode(), (reply, token)


def test_cancelled_calls_never_leave_the_connection_out_of_step(redis_url: str) -> None:
    """Thousands of calls cancelled at random points (queued, written, half answered):
    every call that completes gets its own reply, before and after."""
    rng = random.Random(7)

    async def main() -> None:
        client = aioredis.Redis.from_url(redis_url)
        try:
            for round_ in range(20):
                tasks = [
                    asyncio.ensure_future(
                        _echo(client, f"{round_}-{i}-" + "x" * rng.choice((1, 100, 20_000)))
                    )
                    for i in range(200)
                ]
                for _ in range(rng.randint(0, 4)):  # let a few batches go out first
                    await asyncio.sleep(0)
                doomed = rng.sample(tasks, k=100)
                for task in doomed:
                    task.cancel()
                results = await asyncio.gather(*tasks, return_exceptions=True)
                for task, result in zip(tasks, results, strict=True):
                    if task not in doomed:
                        assert result is None, result  # not cancelled: its own reply
                    else:
                        assert result is None or isinstance(result, asyncio.CancelledError)
            await asyncio.gather(*(_echo(client, f"after-{i}") for i in range(500)))
        finally:
            await client.aclose()

    run(main)


def test_cancelled_appends_leave_the_store_exact(redis_url: str, namespace: str) -> None:
    rng = random.Random(11)

    async def main() -> None:
        async with await AsyncEventStore.from_url(redis_url, namespace=namespace) as store:

            async def append(i: int) -> Any:
                return await store.append("A", f"a{i}", [Deposited(amount=i)], 0)

            tasks = [asyncio.ensure_future(append(i)) for i in range(1000)]
            await asyncio.sleep(0)
            for task in rng.sample(tasks, k=500):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # whatever ran is whole; every later call answers its own question
            for i in range(1000):
                events = await store.read("A", f"a{i}")
                assert [e.event for e in events] in ([], [Deposited(amount=i)])
                assert await store.version_of("A", f"a{i}") == len(events)
                if not events:
                    await append(i)
                with pytest.raises(ConcurrencyError):
                    await append(i)

    run(main)


def test_a_killed_connection_fails_its_calls_and_the_next_ones_reconnect(
    redis_url: str, namespace: str
) -> None:
    async def main() -> None:
        async with await AsyncEventStore.from_url(redis_url, namespace=namespace) as store:
            await store.append("A", "a", [Deposited(amount=1)], 0)
            admin = redis.Redis.from_url(redis_url)
            try:
                slow = asyncio.ensure_future(store.read("A", "a"))
                await asyncio.sleep(0)
                admin.client_kill_filter(_type="normal", skipme=True)
                outcome = await asyncio.gather(slow, return_exceptions=True)
                read = outcome[0]
                assert isinstance(read, redis.ConnectionError) or [
                    e.version for e in cast(list[RecordedEvent], read)
                ] == [1]
            finally:
                admin.close()
            # the next calls connect again and get their own replies
            versions = await asyncio.gather(*(store.version_of("A", "a") for _ in range(50)))
            assert versions == [1] * 50

    run(main)


def test_a_burst_after_the_scripts_were_flushed_loads_the_append_once(
    redis_url: str, namespace: str
) -> None:
    """Hundreds of appends meeting NOSCRIPT together (a restart, a failover) share one
    SCRIPT LOAD instead of each taking a connection for its own."""

    def loads(admin: redis.Redis) -> int:
        stats = admin.info("commandstats")
        return int(
            stats.get("cmdstat_script|load", stats.get("cmdstat_script", {})).get("calls", 0)
        )

    async def main() -> None:
        admin = redis.Redis.from_url(redis_url)
        try:
            async with await AsyncEventStore.from_url(redis_url, namespace=namespace) as store:
                await store.append("A", "warm", [Deposited(amount=0)], 0)
                admin.script_flush()
                before = loads(admin)
                results = await asyncio.gather(
                    *(store.append("A", f"a{i}", [Deposited(amount=i)], 0) for i in range(300))
                )
                assert [r.first_version for r in results] == [1] * 300
                assert loads(admin) - before == 1
        finally:
            admin.close()

    run(main)
