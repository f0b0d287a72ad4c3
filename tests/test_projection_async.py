"""``AsyncProjection`` where the async front differs in shape: reads awaited through
``ctx.client``, redis.asyncio's own pipeline and connections; and both fronts on one
projection (a sync runner taken over by an async one, checkpoints and failures read
across)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
import redis.asyncio

from eventstore import (
    AsyncEventStore,
    AsyncProjection,
    AsyncProjectionContext,
    EventStore,
    Projection,
    ProjectionContext,
    ProjectionError,
    ProjectionTakenOver,
)
from tests.domain import Deposited, Opened
from tests.projection_fronts import balances


def _totals(store: AsyncEventStore, **options: Any) -> AsyncProjection:
    projection = AsyncProjection(store, "totals", **options)

    @projection.on(Deposited)
    async def _deposited(event: Deposited, ctx: AsyncProjectionContext) -> None:
        ctx.pipe.incrby(ctx.key("total"), event.amount)

    return projection


def test_handlers_await_reads_that_see_earlier_events(redis_url: str, namespace: str) -> None:
    async def main() -> None:
        async with await AsyncEventStore.from_url(redis_url, namespace=namespace) as store:
            await store.append("Account", "a1", [Opened(owner="x")] + [Deposited(amount=1)] * 4, 0)
            projection = AsyncProjection(store, "running_total")

            @projection.on(Deposited)
            async def _deposited(event: Deposited, ctx: AsyncProjectionContext) -> None:
                client = await ctx.client  # commits the earlier events' writes first
                current = int(await client.get(ctx.key("total")) or 0)
                ctx.pipe.set(ctx.key("total"), current + event.amount)

            await projection.run(until_caught_up=True)
            assert await store.client.get(projection.key("total")) == b"4"
            assert (await projection.checkpoint()).position(0) == 5

    asyncio.run(main())


def test_reading_after_writing_in_a_handler_is_refused(redis_url: str, namespace: str) -> None:
    async def main() -> None:
        async with await AsyncEventStore.from_url(redis_url, namespace=namespace) as store:
            await store.append("Account", "a1", [Deposited(amount=1)], 0)
            projection = AsyncProjection(store, "misordered")

            @projection.on(Deposited)
            async def _deposited(event: Deposited, ctx: AsyncProjectionContext) -> None:
                ctx.pipe.set(ctx.key("x"), 1)
                await (await ctx.client).get(ctx.key("x"))

            with pytest.raises(ProjectionError, match="before queuing writes"):
                await projection.run(until_caught_up=True)
            assert await store.client.get(projection.key("x")) is None

    asyncio.run(main())


def test_model_and_checkpoint_move_together_when_the_link_drops_around_a_commit(
    redis_url: str, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The link lost right before a commit, and right after it (the reply lost), and a
    commit sent twice: after the reconnect the model holds every event exactly once."""
    calls = {"n": 0}

    async def main() -> None:
        async with await AsyncEventStore.from_url(redis_url, namespace=namespace) as store:
            await store.append("Account", "a1", [Deposited(amount=n) for n in range(1, 11)], 0)
            projection = _totals(store, page_size=2)
            real_commit = projection._run_commit

            async def flaky_commit(keys: list[str], args: list[Any]) -> list[Any]:
                calls["n"] += 1
                if calls["n"] == 2:
                    raise redis.ConnectionError("lost before the commit")
                if calls["n"] == 4:
                    await real_commit(keys, args)
                    raise redis.ConnectionError("lost after the commit, reply never arrived")
                if calls["n"] == 6:
                    await real_commit(keys, args)  # applied; the resend must apply nothing
                return await real_commit(keys, args)

            monkeypatch.setattr(projection, "_run_commit", flaky_commit)
            await projection.run(until_caught_up=True)
            monkeypatch.undo()
            assert calls["n"] == 6
            assert int(await store.client.get(projection.key("total")) or 0) == sum(range(1, 11))
            assert (await projection.checkpoint()).position(0) == 10

    asyncio.run(main())


def test_connections_killed_before_a_commit_are_a_lost_link_not_a_takeover(
    redis_url: str, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real kills of every connection of the store right before a commit: the runner
    reconnects (never stops as taken over) and applies each event once."""
    killer = redis.Redis.from_url(redis_url)
    kills = {"n": 0}

    async def main() -> None:
        async with await AsyncEventStore.from_url(redis_url, namespace=namespace) as store:
            await store.append("Account", "a1", [Deposited(amount=n) for n in range(1, 11)], 0)
            projection = _totals(store, page_size=3)
            real_commit = projection._run_commit

            async def kill_then_commit(keys: list[str], args: list[Any]) -> list[Any]:
                if kills["n"] < 2:
                    kills["n"] += 1
                    killer.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")  # type: ignore[no-untyped-call]
                return await real_commit(keys, args)

            monkeypatch.setattr(projection, "_run_commit", kill_then_commit)
            await projection.run(until_caught_up=True)
            monkeypatch.undo()
            assert kills["n"] == 2
            assert int(await store.client.get(projection.key("total")) or 0) == sum(range(1, 11))
            assert (await projection.checkpoint()).position(0) == 10

    try:
        asyncio.run(main())
    finally:
        killer.close()


def test_a_sync_runner_is_taken_over_by_an_async_runner(store: EventStore, redis_url: str) -> None:
    store.append("Account", "a1", [Deposited(amount=1)] * 5, 0)
    old = balances("sync", store, block_ms=100)

    async def main() -> None:
        async with await AsyncEventStore.from_url(redis_url, namespace=store.namespace) as aio:
            new = balances("async", aio, block_ms=100)
            async with new:
                assert await new.wait_until_caught_up(10)
                await aio.append("Account", "a1", [Deposited(amount=10)], 5)
                assert await new.wait_until_caught_up(10)
                async with asyncio.timeout(10):
                    while old.running:  # stops by itself at its next commit
                        await asyncio.sleep(0.01)
                assert new.running

    with old:
        assert old.wait_until_caught_up(10)
        asyncio.run(main())
        assert isinstance(old.error, ProjectionTakenOver)
    assert int(store.client.hget(old.key("balance"), "a1") or 0) == 15  # each event once
    assert old.checkpoint().position(0) == 6


def test_checkpoints_and_failures_of_one_front_are_read_by_the_other(
    store: EventStore, redis_url: str
) -> None:
    store.append("Account", "a1", [Deposited(amount=n) for n in (1, 2, 3)], 0)

    async def fail_at_two() -> None:
        async with await AsyncEventStore.from_url(redis_url, namespace=store.namespace) as aio:
            strict = AsyncProjection(aio, "strict")

            @strict.on(Deposited)
            async def _deposited(event: Deposited, ctx: AsyncProjectionContext) -> None:
                if event.amount == 2:
                    raise ValueError("2 is not allowed")
                ctx.pipe.rpush(ctx.key("amounts"), event.amount)

            with pytest.raises(ProjectionError):
                await strict.run(until_caught_up=True)

    asyncio.run(fail_at_two())
    fixed = Projection(store, "strict")
    failure = fixed.last_error()  # recorded by the async runner
    assert failure is not None
    assert (failure.position, failure.error.message) == (2, "2 is not allowed")
    assert fixed.checkpoint().position(0) == 1

    @fixed.on(Deposited)
    def _deposited(event: Deposited, ctx: ProjectionContext) -> None:
        ctx.pipe.rpush(ctx.key("amounts"), event.amount)

    fixed.run(until_caught_up=True)  # resumes where the async runner stopped

    async def read_back() -> None:
        async with await AsyncEventStore.from_url(redis_url, namespace=store.namespace) as aio:
            again = AsyncProjection(aio, "strict")
            assert await again.last_error() is None
            assert await again.checkpoint() == await aio.head()

    asyncio.run(read_back())
    assert store.client.lrange(fixed.key("amounts"), 0, -1) == [b"1", b"2", b"3"]
