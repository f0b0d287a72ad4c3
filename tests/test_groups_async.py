"""What only the asyncio front's workers have, and both fronts' workers in one group.

The async worker blocks on a connection of its own (never on the store's multiplexer,
whose other calls go on meanwhile), and a cancelled one is a killed one: what it held
stays pending for the others. A sync and an async worker of one group share its work.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
import redis

from eventstore import AsyncEventStore, EventStore, RecordedEvent
from tests.domain import Deposited
from tests.group_fronts import append_many, ready, until

FAST = timedelta(milliseconds=60)


@pytest.mark.also_on_cluster
def test_a_sync_and_an_async_worker_share_one_group(redis_url: str, namespace: str) -> None:
    with EventStore.from_url(redis_url, namespace=namespace, partitions=2) as sync_store:
        ids = [f"e{i}" for i in range(40)]
        handled: dict[str, list[str]] = {"sync": [], "async": []}

        def sync_handle(recorded: RecordedEvent) -> None:
            time.sleep(0.002)
            handled["sync"].append(recorded.event_id)

        async def async_handle(recorded: RecordedEvent) -> None:
            await asyncio.sleep(0.002)
            handled["async"].append(recorded.event_id)

        async def main() -> None:
            async with await AsyncEventStore.from_url(redis_url, namespace=namespace) as aio:
                for i, event_id in enumerate(ids):  # the fronts take turns appending
                    writer = aio if i % 2 else sync_store
                    event = [Deposited(amount=i)]
                    await ready(writer.append("Account", f"a{i}", event, 0, event_ids=[event_id]))
                sync_group = sync_store.consumer_group("shared")
                async_group = await aio.consumer_group("shared")
                sync_worker = sync_group.worker("sync-w", sync_handle, batch_size=2)
                async_worker = async_group.worker("async-w", async_handle, batch_size=2)
                stats = await asyncio.gather(
                    asyncio.to_thread(sync_worker.run, stop_when_idle=True),
                    async_worker.run(stop_when_idle=True),
                )
                assert sum(s.processed for s in stats) == 40
                assert all(s.processed > 0 for s in stats), stats  # both did some of it
                assert (await async_group.lag(), sync_group.pending()) == (0, 0)

        asyncio.run(main())
        everything = handled["sync"] + handled["async"]
        assert sorted(everything) == sorted(ids)  # nothing lost
        assert len(everything) == len(set(everything))  # nothing handled twice


def test_a_blocked_async_worker_holds_up_no_other_call(redis_url: str, namespace: str) -> None:
    """The blocking read waits on a connection of its own, not on the multiplexer's, whose
    socket timeout (shorter than the block here) does not apply to it either."""
    admin = redis.Redis.from_url(redis_url)

    async def main() -> None:
        store = await AsyncEventStore.from_url(redis_url, namespace=namespace, socket_timeout=0.5)
        async with store:
            group = await store.consumer_group("g")
            seen: list[str] = []

            async def handle(recorded: RecordedEvent) -> None:
                seen.append(recorded.aggregate_id)

            worker = group.worker("w", handle, block=timedelta(seconds=1))
            running = asyncio.create_task(worker.run())
            await asyncio.sleep(0.2)  # blocked reading, for up to a second
            for i in range(10):
                started = time.monotonic()
                await store.append("Account", f"a{i}", [Deposited(amount=1)], 0)
                assert await store.version_of("Account", f"a{i}") == 1
                assert time.monotonic() - started < 0.25
            await until(lambda: len(seen) == 10)
            await asyncio.sleep(1.5)  # idle longer than the socket timeout
            (blocked,) = [c["id"] for c in admin.client_list() if "b" in c["flags"]]
            await store.append("Account", "late", [Deposited(amount=1)], 0)
            await until(lambda: seen[-1:] == ["late"])
            worker.stop()
            await asyncio.wait_for(running, 5)
            # closed when run returns (the server notices the closed socket a moment later)
            await until(lambda: blocked not in [c["id"] for c in admin.client_list()], 2)

    try:
        asyncio.run(main())
    finally:
        admin.close()


@pytest.mark.also_on_cluster
def test_a_cancelled_async_worker_is_a_killed_one(redis_url: str, namespace: str) -> None:
    """Cancelled in its handler: its entries stay pending for others to claim. Cancelled in
    a blocked read: that read's connection is dropped, and the worker runs again."""

    async def main() -> None:
        async with await AsyncEventStore.from_url(redis_url, namespace=namespace) as store:
            ids = await append_many(store, 5)
            group = await store.consumer_group("g")
            in_hand = asyncio.Event()

            async def stuck(recorded: RecordedEvent) -> None:
                in_hand.set()
                await asyncio.sleep(3600)

            running = asyncio.create_task(group.worker("w1", stuck, batch_size=5).run())
            await asyncio.wait_for(in_hand.wait(), 10)
            running.cancel()
            with pytest.raises(asyncio.CancelledError):
                await running
            assert await group.pending() == 5  # nothing acknowledged, nothing released
            assert await store.version_of("Account", "a0") == 1  # the store is in step

            seen: list[str] = []

            async def handle(recorded: RecordedEvent) -> None:
                seen.append(recorded.event_id)

            await asyncio.sleep(FAST.total_seconds() * 1.5)
            worker = group.worker("w2", handle, claim_idle=FAST, block=timedelta(seconds=5))
            assert (await worker.run(stop_when_idle=True)).claimed == 5
            assert sorted(seen) == sorted(ids)

            blocked = asyncio.create_task(worker.run())
            await asyncio.sleep(0.2)  # blocked reading on its own connection
            blocked.cancel()
            with pytest.raises(asyncio.CancelledError):
                await blocked
            more = await append_many(store, 2, prefix="b")
            await worker.run(stop_when_idle=True)
            assert sorted(seen) == sorted(ids + more)
            assert (await group.lag(), await group.pending()) == (0, 0)

    asyncio.run(main())
