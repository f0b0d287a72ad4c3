"""Projections on both fronts: one body per scenario, run with ``asyncio.run``.

``AsyncProjection`` is generated into ``Projection``, so each scenario holds the two to
the same guarantees: each event applied once with model and checkpoint committed
together, a poison event recorded and stopping the runner, takeover, blue/green.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from typing import Any

import pytest

from eventstore import (
    AsyncProjection,
    AsyncProjectionContext,
    Checkpoint,
    ConfigurationError,
    Projection,
    ProjectionContext,
    ProjectionError,
    ProjectionTakenOver,
)
from tests.domain import Deposited, Opened, Withdrawn
from tests.fronts import Front
from tests.projection_fronts import (
    PROJECTIONS,
    balance,
    balances,
    handle,
    opened,
    ready,
    running,
)

pytestmark = [pytest.mark.both_fronts, pytest.mark.all_servers]


async def _stopped_by_itself(projection: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while projection.running:
            await asyncio.sleep(0.01)


def test_each_event_once_with_model_and_checkpoint_committed_together(
    redis_url: str, namespace: str, front: Front
) -> None:
    async def main() -> None:
        async with opened(front, redis_url, namespace=namespace, partitions=2) as store:
            for i in range(6):
                events = [Opened(owner=f"o{i}"), Deposited(amount=i)]
                await ready(store.append("Account", f"a{i}", events, 0))
            projection = balances(front, store, page_size=3)
            await ready(projection.run(until_caught_up=True))
            assert [await balance(store, projection, f"a{i}") for i in range(6)] == list(range(6))
            head = await ready(store.head())
            assert await ready(projection.checkpoint()) == head
            for partition in range(2):
                ckpt = store.keys.checkpoints(partition)
                registered = await ready(store.client.hget(ckpt, "projection:balances:v1"))
                assert int(registered) == head.position(partition)

            # a restarted runner resumes from the stored checkpoint: nothing applied twice
            await ready(store.append("Account", "a1", [Deposited(amount=5)], 2))
            again = balances(front, store)
            await ready(again.run(until_caught_up=True))
            assert await balance(store, again, "a1") == 6
            assert await ready(again.checkpoint()) == await ready(store.head())

    asyncio.run(main())


def test_a_background_runner_follows_live_events(
    redis_url: str, namespace: str, front: Front
) -> None:
    async def main() -> None:
        async with opened(front, redis_url, namespace=namespace) as store:
            await ready(
                store.append("Account", "a1", [Opened(owner="ann"), Deposited(amount=10)], 0)
            )
            projection = balances(front, store, block_ms=100)
            async with running(projection):
                assert await ready(projection.wait_until_caught_up(10))
                assert await balance(store, projection, "a1") == 10
                await ready(store.append("Account", "a1", [Withdrawn(amount=3)], 2))
                await ready(store.append("Wallet", "w1", [Opened(owner="skip")], 0))
                assert await ready(projection.wait_until_caught_up(10))
                assert await balance(store, projection, "a1") == 7
                assert projection.running
                with pytest.raises(RuntimeError, match="already running"):
                    projection.start()
            assert not projection.running
            assert (await ready(projection.checkpoint())).position(0) == 4

    asyncio.run(main())


def test_a_poison_event_is_recorded_and_stops_the_runner(
    redis_url: str, namespace: str, front: Front
) -> None:
    async def main() -> None:
        async with opened(front, redis_url, namespace=namespace) as store:
            events = [Opened(owner="x"), Deposited(amount=1), Deposited(amount=2)]
            await ready(store.append("Account", "a1", events, 0))
            strict = PROJECTIONS[front](store, "strict")

            def deposited(event: Deposited, ctx: Any) -> None:
                ctx.pipe.rpush(ctx.key("amounts"), event.amount)
                if event.amount == 2:
                    raise ValueError("two is not allowed")

            handle(strict, Deposited, deposited)
            with pytest.raises(ProjectionError) as info:
                await ready(strict.run(until_caught_up=True))
            error = info.value
            assert (error.projection, error.event_type, error.version, error.position) == (
                "strict", "Deposited", 3, 3,
            )  # fmt: skip
            assert isinstance(error.__cause__, ValueError)
            # the event before it is committed with its checkpoint; the failed one left no write
            assert await ready(store.client.lrange(strict.key("amounts"), 0, -1)) == [b"1"]
            assert (await ready(strict.checkpoint())).position(0) == 2
            failure = await ready(PROJECTIONS[front](store, "strict").last_error())
            assert (failure.position, failure.error.message) == (3, "two is not allowed")

            # in the background, the error stops the runner and reaches its waiters
            strict.start()
            with pytest.raises(ProjectionError, match="two is not allowed"):
                await ready(strict.wait_until_caught_up(10))
            await _stopped_by_itself(strict)
            assert isinstance(strict.error, ProjectionError)

            fixed = PROJECTIONS[front](store, "strict")
            handle(fixed, Deposited, lambda e, ctx: ctx.pipe.rpush(ctx.key("amounts"), e.amount))
            await ready(fixed.run(until_caught_up=True))
            assert await ready(store.client.lrange(fixed.key("amounts"), 0, -1)) == [b"1", b"2"]
            assert await ready(fixed.last_error()) is None

    asyncio.run(main())


def test_a_write_redis_refuses_at_exec_rewinds_the_checkpoint(
    redis_url: str, namespace: str, front: Front
) -> None:
    async def main() -> None:
        async with opened(front, redis_url, namespace=namespace) as store:
            await ready(
                store.append("Account", "a1", [Deposited(amount=1), Deposited(amount=2)], 0)
            )
            projection = PROJECTIONS[front](store, "wrongtype")
            await ready(store.client.set(projection.key("list"), "not a list"))

            def deposited(event: Deposited, ctx: Any) -> None:
                ctx.pipe.incrby(ctx.key("sum"), event.amount)
                if event.amount == 2:
                    ctx.pipe.rpush(ctx.key("list"), "x")  # WRONGTYPE at EXEC time

            handle(projection, Deposited, deposited)
            with pytest.raises(ProjectionError, match="WRONGTYPE") as info:
                await ready(projection.run(until_caught_up=True))
            assert info.value.version == 2
            assert (await ready(projection.checkpoint())).position(0) == 1

    asyncio.run(main())


def test_a_newer_runner_takes_over_and_nothing_applies_twice(
    redis_url: str, namespace: str, front: Front
) -> None:
    async def main() -> None:
        async with opened(front, redis_url, namespace=namespace) as store:
            await ready(store.append("Account", "a1", [Deposited(amount=1)] * 5, 0))
            old, new = balances(front, store, block_ms=100), balances(front, store, block_ms=100)
            async with running(old):
                assert await ready(old.wait_until_caught_up(10))
                async with running(new):
                    assert await ready(new.wait_until_caught_up(10))
                    await ready(store.append("Account", "a1", [Deposited(amount=10)], 5))
                    assert await ready(new.wait_until_caught_up(10))
                    await _stopped_by_itself(old)
                assert isinstance(old.error, ProjectionTakenOver)
                with pytest.raises(ProjectionTakenOver, match="balances"):
                    await ready(old.wait_until_caught_up(1))
            assert await balance(store, new, "a1") == 15
            assert (await ready(new.checkpoint())).position(0) == 6

    asyncio.run(main())


def test_rebuild_into_a_new_version_then_promote_and_retire(
    redis_url: str, namespace: str, front: Front
) -> None:
    async def main() -> None:
        async with opened(front, redis_url, namespace=namespace) as store:
            await ready(
                store.append("Account", "a1", [Opened(owner="ann"), Deposited(amount=5)], 0)
            )
            blue = balances(front, store, version=1, block_ms=100)
            await ready(blue.run(until_caught_up=True))
            await ready(blue.promote())

            green = PROJECTIONS[front](store, "balances", version=2, block_ms=100)  # in cents

            def cents(event: Deposited, ctx: Any) -> None:
                ctx.pipe.hincrby(ctx.key("balance"), ctx.record.aggregate_id, event.amount * 100)

            handle(green, Deposited, cents)
            async with running(blue, green):
                await ready(store.append("Account", "a1", [Deposited(amount=1)], 2))
                assert await ready(green.wait_until_caught_up(10))
                assert await ready(blue.wait_until_caught_up(10))
                assert await balance(store, green, "a1") == 6  # readers still see version 1
                await ready(green.promote())
                assert await ready(blue.active_version()) == 2
                assert await balance(store, blue, "a1") == 600

            with pytest.raises(ConfigurationError, match="serves reads"):
                await ready(green.retire())
            assert await ready(blue.retire()) == 2  # its owner and balance hashes
            assert await ready(store.client.exists(blue.key("balance"))) == 0
            checkpoints = store.keys.checkpoints(0)
            assert await ready(store.client.hget(checkpoints, blue.checkpoint_field)) is None
            assert await ready(store.client.hget(checkpoints, green.checkpoint_field)) == b"3"

    asyncio.run(main())


def test_retiring_a_running_version_stops_its_runner(
    redis_url: str, namespace: str, front: Front
) -> None:
    async def main() -> None:
        async with opened(front, redis_url, namespace=namespace) as store:
            await ready(store.append("Account", "a1", [Deposited(amount=1)], 0))
            projection = balances(front, store, block_ms=100)
            async with running(projection):
                assert await ready(projection.wait_until_caught_up(10))
                await ready(projection.retire())
                await ready(store.append("Account", "a1", [Deposited(amount=1)], 1))
                with pytest.raises(ProjectionTakenOver):
                    await ready(projection.wait_until_caught_up(10))
            assert await ready(store.client.exists(projection.key("balance"))) == 0
            assert await ready(projection.checkpoint()) == Checkpoint.start(1)

    asyncio.run(main())


def test_stop_from_another_thread_or_task_ends_a_foreground_run(
    redis_url: str, namespace: str, front: Front
) -> None:
    async def main() -> None:
        async with opened(front, redis_url, namespace=namespace) as store:
            projection = balances(front, store, block_ms=100)
            # the sync run() holds this thread (and the loop): stop it from another thread
            stopper = threading.Timer(0.3, lambda: asyncio.run(ready(projection.stop())))
            stopper.start()
            async with asyncio.timeout(10):
                await ready(projection.run())  # returns once stopped
            stopper.join()
            assert (await ready(projection.checkpoint())).position(0) == 0

            # the async front: stopped by another task too
            if front == "async":
                stopping = asyncio.create_task(_stop_after(projection, 0.3))
                async with asyncio.timeout(10):
                    await projection.run()
                await stopping

    asyncio.run(main())


async def _stop_after(projection: AsyncProjection, seconds: float) -> None:
    await asyncio.sleep(seconds)
    await projection.stop()


ASYNC_NAMES = {"__aenter__": "__enter__", "__aexit__": "__exit__"}


@pytest.mark.parametrize(
    ("async_class", "sync_class"),
    [(AsyncProjection, Projection), (AsyncProjectionContext, ProjectionContext)],
)
def test_the_fronts_offer_the_same_names_and_arguments(async_class: type, sync_class: type) -> None:
    def public(cls: type) -> dict[str, Any]:
        return {
            ASYNC_NAMES.get(name, name): value
            for name, value in inspect.getmembers(cls)
            if not name.startswith("_") or name in (*ASYNC_NAMES, "__enter__", "__exit__")
        }

    async_members, sync_members = public(async_class), public(sync_class)
    assert set(sync_members) == set(async_members)
    for name, sync_value in sync_members.items():
        async_value = async_members[name]
        if inspect.isfunction(sync_value):
            assert inspect.signature(sync_value).parameters.keys() == (
                inspect.signature(async_value).parameters.keys()
            ), name
            assert inspect.iscoroutinefunction(async_value) or name in {
                "on",
                "start",
                "key",
                "checkpoint_at",
            }
