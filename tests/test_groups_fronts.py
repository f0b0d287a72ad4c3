"""Consumer groups on both fronts through the one flow: the same bodies, sync and async.

Each body runs in ``asyncio.run``; ``tests.group_fronts`` makes either front's calls
look alike. What only the async front has is in ``test_groups_async``.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from eventstore import (
    AsyncConsumerGroup,
    AsyncWorker,
    ConsumerGroup,
    GroupNotFound,
    RecordedEvent,
    Worker,
)
from eventstore.testing import RedisClusterServers
from tests.cluster_helpers import spread_namespace
from tests.domain import Deposited
from tests.fronts import Front
from tests.group_fronts import append_many, handler, opened, ready, run, until

# tests marked also_on_cluster run on a Redis Cluster too, where workers sleep on hints
pytestmark = [pytest.mark.both_fronts, pytest.mark.all_servers]
FAST = timedelta(milliseconds=60)


class Crash(BaseException):
    """Escapes the worker like a kill would: the entries it holds stay pending."""


# what talks to Redis is awaited on the async front; the rest is the same on both
NOT_AWAITED = {"worker", "partition_streams", "stop"}


@pytest.mark.parametrize(
    ("async_class", "sync_class"), [(AsyncConsumerGroup, ConsumerGroup), (AsyncWorker, Worker)]
)
def test_the_fronts_offer_the_same_names_and_arguments(async_class: type, sync_class: type) -> None:
    def public(cls: type) -> dict[str, Any]:
        return {n: v for n, v in inspect.getmembers(cls) if not n.startswith("_")}

    async_members, sync_members = public(async_class), public(sync_class)
    assert set(async_members) == set(sync_members)
    for name, sync_value in sync_members.items():
        async_value = async_members[name]
        if callable(sync_value):
            assert inspect.signature(async_value).parameters.keys() == (
                inspect.signature(sync_value).parameters.keys()
            ), name
            awaited = inspect.iscoroutinefunction(async_value)
            assert awaited == (name not in NOT_AWAITED), name


@pytest.mark.also_on_cluster
def test_every_event_goes_to_the_worker_once_and_is_acknowledged(
    front: Front, redis_url: str, namespace: str
) -> None:
    async def main() -> None:
        async with opened(front, redis_url, namespace=namespace, partitions=2) as store:
            ids = await append_many(store, 30)
            group = await ready(store.consumer_group("fulfillment", start="beginning"))
            assert await ready(group.lag()) == 30
            seen: list[RecordedEvent] = []

            async def handle(recorded: RecordedEvent) -> None:
                seen.append(recorded)

            worker = group.worker("w1", handler(front, handle), max_deliveries=3, claim_idle=FAST)
            stats = await run(worker, stop_when_idle=True)
            assert sorted(r.event_id for r in seen) == sorted(ids)
            assert {r.partition for r in seen} == {0, 1}
            assert (stats.processed, stats.failed, stats.dead_lettered) == (30, 0, 0)
            assert await ready(group.lag()) == 0
            assert await ready(group.pending()) == 0
            assert await ready(group.dead_letters()) == []
            for partition in (0, 1):  # per partition, in position order
                positions = [r.position for r in seen if r.partition == partition]
                assert positions == sorted(positions)

    asyncio.run(main())


@pytest.mark.also_on_cluster
def test_a_poison_event_is_dead_lettered_with_its_error_and_replayed(
    front: Front, redis_url: str, namespace: str
) -> None:
    async def main() -> None:
        async with opened(front, redis_url, namespace=namespace, partitions=2) as store:
            ids = await append_many(store, 10)
            poison = ids[4]
            group = await ready(store.consumer_group("billing"))
            attempts = Counter[str]()
            healed = threading.Event()

            async def charge(recorded: RecordedEvent) -> None:
                attempts[recorded.event_id] += 1
                if recorded.event_id == poison and not healed.is_set():
                    raise ValueError("card declined")

            worker = group.worker("w", handler(front, charge), max_deliveries=3, claim_idle=FAST)
            stats = await run(worker, stop_when_idle=True)
            assert attempts[poison] == 3  # one delivery, then two claimed retries
            assert {attempts[i] for i in ids if i != poison} == {1}
            assert (stats.processed, stats.failed, stats.dead_lettered) == (9, 3, 1)
            (dead,) = await ready(group.dead_letters())
            assert (dead.recorded.event_id, dead.deliveries, dead.consumer) == (poison, 3, "w")
            assert str(dead.error) == "ValueError: card declined"
            assert "charge" in dead.error.traceback
            assert await ready(group.dead_letter(dead.id)) == dead
            assert (await ready(group.lag()), await ready(group.pending())) == (0, 0)

            healed.set()
            assert await ready(group.replay_dead_letters([dead.id])) == 1
            assert await ready(group.lag()) == 1
            again = group.worker("w2", handler(front, charge), claim_idle=FAST)
            assert (await run(again, stop_when_idle=True)).processed == 1
            assert attempts[poison] == 4
            assert await ready(group.dead_letters()) == []
            assert (await ready(group.lag()), await ready(group.pending())) == (0, 0)

    asyncio.run(main())


@pytest.mark.also_on_cluster
def test_dead_letters_are_replayed_or_discarded_in_bulk(
    front: Front, redis_url: str, namespace: str
) -> None:
    async def main() -> None:
        async with opened(front, redis_url, namespace=namespace, partitions=2) as store:
            await append_many(store, 6)
            group = await ready(store.consumer_group("g"))
            refuse = {"a1", "a2", "a3", "a4"}

            async def mail(recorded: RecordedEvent) -> None:
                if recorded.aggregate_id in refuse:
                    raise RuntimeError("mail server down")

            worker = group.worker("w", handler(front, mail), max_deliveries=1, claim_idle=FAST)
            await run(worker, stop_when_idle=True)
            dead = await ready(group.dead_letters())
            assert sorted(d.recorded.aggregate_id for d in dead) == sorted(refuse)
            assert len(await ready(group.dead_letters(limit=3))) == 3
            assert await ready(group.discard_dead_letters([dead[0].id])) == 1
            refuse.clear()
            assert await ready(group.replay_dead_letters()) == 3
            assert await ready(group.lag()) == 3
            stats = await run(group.worker("w2", handler(front, mail)), stop_when_idle=True)
            assert stats.processed == 3
            status = await ready(group.status())
            assert [(s.lag, s.pending, s.dead_letters) for s in status] == [(0, 0, 0)] * 2
            await ready(group.destroy())

    asyncio.run(main())


@pytest.mark.also_on_cluster
def test_a_dead_workers_entries_are_claimed_after_claim_idle(
    front: Front, redis_url: str, namespace: str
) -> None:
    async def main() -> None:
        async with opened(front, redis_url, namespace=namespace) as store:
            ids = await append_many(store, 8)
            group = await ready(store.consumer_group("g"))
            tried = Counter[str]()

            async def doomed(recorded: RecordedEvent) -> None:
                tried[recorded.event_id] += 1
                raise Crash

            dying = group.worker("doomed", handler(front, doomed), batch_size=5, claim_idle=FAST)
            with pytest.raises(Crash):
                await run(dying)
            held = await ready(group.pending_entries(0))
            assert [e.consumer for e in held] == ["doomed"] * 5  # the read it died in

            async def healthy(recorded: RecordedEvent) -> None:
                tried[recorded.event_id] += 1

            await asyncio.sleep(FAST.total_seconds() * 1.5)
            survivor = group.worker("survivor", handler(front, healthy), claim_idle=FAST)
            stats = await run(survivor, stop_when_idle=True)
            assert stats.claimed == 5
            assert stats.processed == 8
            assert set(tried) == set(ids)
            assert tried[ids[0]] == 2  # the one in hand when it died: handled again
            assert sum(tried.values()) == 9
            assert (await ready(group.lag()), await ready(group.pending())) == (0, 0)

    asyncio.run(main())


@pytest.mark.also_on_cluster
def test_stop_from_another_task_finishes_the_event_in_hand(
    front: Front, redis_url: str, namespace: str
) -> None:
    async def main() -> None:
        async with opened(front, redis_url, namespace=namespace) as store:
            await append_many(store, 6)
            group = await ready(store.consumer_group("g"))
            in_hand = threading.Event()
            handled: list[str] = []

            async def slow(recorded: RecordedEvent) -> None:
                in_hand.set()
                await asyncio.sleep(0.1)
                handled.append(recorded.aggregate_id)

            worker = group.worker("w1", handler(front, slow), batch_size=6)
            running = asyncio.create_task(run(worker))
            await until(in_hand.is_set)
            worker.stop()
            await asyncio.wait_for(running, 10)
            assert handled == ["a0"]  # finished and acknowledged, nothing else started
            released = await ready(group.pending_entries(0))
            assert len(released) == 5
            assert {e.deliveries for e in released} == {0}  # released untried
            # another worker takes them at once, although its claim_idle is long
            other = group.worker("w2", handler(front, slow))
            await run(other, stop_when_idle=True)
            assert sorted(handled) == [f"a{i}" for i in range(6)]
            assert (await ready(group.lag()), await ready(group.pending())) == (0, 0)

    asyncio.run(main())


@pytest.mark.also_on_cluster
def test_stop_ends_an_idle_blocked_read_within_the_block_time(
    front: Front, redis_url: str, namespace: str
) -> None:
    async def main() -> None:
        async with opened(front, redis_url, namespace=namespace) as store:
            group = await ready(store.consumer_group("g"))
            seen: list[str] = []

            async def handle(recorded: RecordedEvent) -> None:
                seen.append(recorded.aggregate_id)

            block = timedelta(milliseconds=300)
            worker = group.worker("w", handler(front, handle), block=block)
            running = asyncio.create_task(run(worker))
            await asyncio.sleep(0.2)  # blocked reading
            await append_many(store, 1)  # the blocked read returns with it
            await until(lambda: seen == ["a0"])
            await asyncio.sleep(0.1)  # blocked again
            started = time.monotonic()
            await asyncio.to_thread(worker.stop)  # from another thread, this time
            await asyncio.wait_for(running, 5)
            assert time.monotonic() - started < block.total_seconds() + 0.3
            assert (await ready(group.lag()), await ready(group.pending())) == (0, 0)

    asyncio.run(main())


@pytest.mark.also_on_cluster
def test_the_group_scripts_reload_after_a_script_flush(
    front: Front, redis_url: str, namespace: str
) -> None:
    """What a restart or a failover to a fresh replica does to the fail, lease and replay
    scripts: each loads itself again."""

    async def main() -> None:
        async with opened(front, redis_url, namespace=namespace) as store:
            await append_many(store, 2)
            group = await ready(store.consumer_group("g"))

            async def fail(recorded: RecordedEvent) -> None:
                raise RuntimeError(f"always fails: {recorded.event_id}")

            await ready(store.client.script_flush())
            worker = group.worker("w", handler(front, fail), max_deliveries=1, claim_idle=FAST)
            await run(worker, stop_when_idle=True)
            assert len(await ready(group.dead_letters())) == 2
            await ready(store.client.script_flush())
            assert await ready(group.replay_dead_letters()) == 2

    asyncio.run(main())


@pytest.mark.also_on_cluster
def test_errors_name_what_is_at_fault(front: Front, redis_url: str, namespace: str) -> None:
    async def main() -> None:
        async with opened(front, redis_url, namespace=namespace) as store:
            with pytest.raises(ValueError, match="start"):
                await ready(store.consumer_group("g", start="middle"))
            with pytest.raises(ValueError, match="consumer group"):
                await ready(store.consumer_group("bad name"))
            group = await ready(store.consumer_group("g"))
            with pytest.raises(ValueError, match="consumer"):
                group.worker("bad name", print)
            await ready(group.destroy())
            with pytest.raises(GroupNotFound) as info:
                await ready(group.lag())
            assert info.value.group == "g"

    asyncio.run(main())


@pytest.mark.slow
def test_workers_on_every_node_of_a_cluster_wake_on_live_hints(
    front: Front, cluster: RedisClusterServers, namespace: str
) -> None:
    """Partitions on all three primaries, two competing workers sleeping on sharded
    notifications: every event once, and append -> handler well below the block time."""
    cluster.flush()
    spread = spread_namespace(cluster, namespace, 6)

    async def main() -> list[float]:
        async with opened(front, cluster.url, namespace=spread, partitions=6) as store:
            group = await ready(store.consumer_group("g", start="end"))
            await append_many(store, 6, prefix="warm")  # types the hint feed subscribes to
            arrived: dict[str, float] = {}
            handled = Counter[str]()

            async def handle(recorded: RecordedEvent) -> None:
                handled[recorded.event_id] += 1
                arrived[recorded.aggregate_id] = time.perf_counter()

            block, long = timedelta(seconds=2), timedelta(hours=1)
            workers = [
                group.worker(f"w{i}", handler(front, handle), block=block, claim_idle=long)
                for i in range(2)
            ]
            running = [asyncio.create_task(run(worker)) for worker in workers]
            try:
                await until(lambda: len(arrived) == 6)  # the warm-up events, then idle
                latencies = []
                for i in range(10):
                    await asyncio.sleep(0.05)  # both workers are asleep on Pub/Sub again
                    sent, name = time.perf_counter(), f"late{i}"
                    await ready(store.append("Account", name, [Deposited(amount=1)], 0))
                    await until(lambda: name in arrived)  # noqa: B023 - awaited at once
                    latencies.append(arrived[name] - sent)
            finally:
                for worker in workers:
                    worker.stop()
                await asyncio.wait(running, timeout=10)
            assert set(handled.values()) == {1}
            assert len(handled) == 16
            assert (await ready(group.lag()), await ready(group.pending())) == (0, 0)
            return latencies

    latencies = asyncio.run(main())
    # a missed notification would cost the whole 2 s block: every one must be far below
    assert max(latencies) < 0.5, latencies
