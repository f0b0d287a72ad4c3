"""Projections on a Redis Cluster: each version's keys in its own slot, every page of
model writes committed with its checkpoints in one script there, floors for the trim point.
"""

from __future__ import annotations

import asyncio
from typing import cast

import pytest
from redis.cluster import RedisCluster
from redis.crc import key_slot

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
from eventstore.testing import RedisClusterServers
from tests.domain import Deposited, Opened

pytestmark = pytest.mark.slow

ACCOUNTS = 18


def _totals(store: EventStore, *, version: int = 1, page_size: int = 5) -> Projection:
    """Sum and count of deposits (INCRBY: applying an event twice shows), per account too."""
    projection = Projection(store, "totals", version=version, page_size=page_size)

    @projection.on(Deposited)
    def _deposited(event: Deposited, ctx: ProjectionContext) -> None:
        ctx.pipe.incrby(ctx.key("sum"), event.amount)
        ctx.pipe.incr(ctx.key("count"))
        ctx.pipe.hincrby(ctx.key("by_account"), ctx.record.aggregate_id, event.amount)

    return projection


def _fill(store: EventStore) -> int:
    total = 0
    for i in range(ACCOUNTS):
        store.append("Account", f"a{i}", [Opened(owner="x"), Deposited(amount=i + 1)], 0)
        total += i + 1
    return total


def test_a_projection_runs_on_a_cluster_with_its_keys_in_one_slot(
    cluster_store: EventStore,
) -> None:
    total = _fill(cluster_store)
    projection = _totals(cluster_store)
    projection.run(until_caught_up=True)
    assert int(cluster_store.client.get(projection.key("sum")) or 0) == total
    assert int(cluster_store.client.get(projection.key("count")) or 0) == ACCOUNTS
    assert projection.checkpoint() == cluster_store.head()
    slots = {
        key_slot(key.encode())
        for key in (
            projection.key("sum"),
            projection.key("by_account"),
            projection.lease_key,
            projection.error_key,
            cluster_store.keys.projection_checkpoints("totals", 1),
        )
    }
    assert len(slots) == 1
    # the partitions' floors are registered for the trim point, never ahead
    for partition, position in enumerate(projection.checkpoint().positions):
        floor = cluster_store.client.hget(
            cluster_store.keys.checkpoints(partition), projection.checkpoint_field
        )
        assert floor is not None
        assert int(floor) == position
        assert cluster_store.safe_trim_point(partition) == position + 1

    cluster_store.append("Account", "a0", [Deposited(amount=100)], 2)
    behind = cluster_store.keys.partition_of("a0")  # the trim keeps what it has not applied
    assert cluster_store.head().position(behind) == projection.checkpoint().position(behind) + 1
    assert cluster_store.safe_trim_point(behind) == projection.checkpoint().position(behind) + 1
    with projection:  # live: woken by the hints, as a subscription is
        assert projection.wait_until_caught_up(10)
    assert int(cluster_store.client.get(projection.key("sum")) or 0) == total + 100


def test_a_refused_write_on_a_cluster_stops_the_checkpoint_before_its_event(
    cluster_store: EventStore,
) -> None:
    cluster_store.append("Account", "z", [Deposited(amount=n) for n in range(1, 6)], 0)
    projection = Projection(cluster_store, "refusing", page_size=10)
    cluster_store.client.set(projection.key("list"), "not a list")

    @projection.on(Deposited)
    def _deposited(event: Deposited, ctx: ProjectionContext) -> None:
        ctx.pipe.incrby(ctx.key("sum"), event.amount)
        if event.amount == 3:
            ctx.pipe.rpush(ctx.key("list"), "x")

    with pytest.raises(ProjectionError, match="WRONGTYPE") as info:
        projection.run(until_caught_up=True)
    assert info.value.version == 3
    partition = cluster_store.keys.partition_of("z")
    assert projection.checkpoint().position(partition) == 2
    assert int(cluster_store.client.get(projection.key("sum")) or 0) == 1 + 2 + 3  # stopped there
    failure = projection.last_error()
    assert failure is not None
    assert failure.position == 3
    floor = cluster_store.client.hget(
        cluster_store.keys.checkpoints(partition), projection.checkpoint_field
    )
    assert floor is not None
    assert int(floor) <= 2

    cluster_store.client.delete(projection.key("list"))
    projection.run(until_caught_up=True)  # fixed: event 3 applied again, then 4 and 5
    assert projection.last_error() is None
    assert projection.checkpoint().position(partition) == 5


def test_blue_green_on_a_cluster(cluster_store: EventStore) -> None:
    total = _fill(cluster_store)
    blue = _totals(cluster_store, version=1)
    blue.run(until_caught_up=True)
    blue.promote()
    green = _totals(cluster_store, version=2, page_size=3)
    green.run(until_caught_up=True)
    assert green.active_key("sum") == blue.key("sum")
    green.promote()
    assert int(cluster_store.client.get(green.active_key("sum")) or 0) == total
    assert blue.retire() == 3  # sum, count, by_account
    assert cluster_store.client.exists(blue.key("sum"), blue.lease_key) == 0
    assert cluster_store.client.exists(cluster_store.keys.projection_checkpoints("totals", 1)) == 0
    for partition in range(cluster_store.partitions):
        assert (
            cluster_store.client.hget(
                cluster_store.keys.checkpoints(partition), blue.checkpoint_field
            )
            is None
        )


def test_a_runner_taken_over_on_a_cluster_commits_nothing(cluster_store: EventStore) -> None:
    cluster_store.append("Account", "a1", [Deposited(amount=1)] * 4, 0)
    old, new = _totals(cluster_store, page_size=1), _totals(cluster_store, page_size=1)
    real_commit = old._run_commit
    calls = {"n": 0}

    def taken_over_before_the_second_commit(keys: list[str], args: list[object]) -> list[object]:
        calls["n"] += 1
        if calls["n"] == 2:
            new.run(until_caught_up=True)
        return real_commit(keys, args)

    old._run_commit = taken_over_before_the_second_commit  # type: ignore[method-assign]
    with pytest.raises(ProjectionTakenOver):
        old.run(until_caught_up=True)
    assert int(cluster_store.client.get(old.key("sum")) or 0) == 4


def test_the_async_front_runs_projections_on_a_cluster(
    cluster: RedisClusterServers, namespace: str
) -> None:
    cluster.flush()

    async def main() -> None:
        url = cluster.url
        async with await AsyncEventStore.from_url(url, namespace=namespace, partitions=6) as store:
            for i in range(ACCOUNTS):
                await store.append("Account", f"a{i}", [Deposited(amount=i + 1)], 0)
            projection = AsyncProjection(store, "totals", page_size=4)

            @projection.on(Deposited)
            async def _deposited(event: Deposited, ctx: AsyncProjectionContext) -> None:
                client = await ctx.client  # reads see the earlier events' writes
                count = int(await client.get(ctx.key("count")) or 0)
                ctx.pipe.set(ctx.key("count"), count + 1)
                ctx.pipe.incrby(ctx.key("sum"), event.amount)

            await projection.run(until_caught_up=True)
            assert int(await store.client.get(projection.key("sum")) or 0) == sum(
                range(1, ACCOUNTS + 1)
            )
            assert int(await store.client.get(projection.key("count")) or 0) == ACCOUNTS
            assert await projection.checkpoint() == await store.head()
            async with projection:
                await store.append("Account", "a1", [Deposited(amount=50)], 1)
                assert await projection.wait_until_caught_up(10)
            assert int(await store.client.get(projection.key("count")) or 0) == ACCOUNTS + 1

    asyncio.run(main())


def test_a_write_outside_the_projections_slot_is_refused_clearly(
    cluster_store: EventStore,
) -> None:
    """A handler writing a key outside the projection's slot (on another node, or in
    another slot of the same node) gets a refusal that says what to do, and the
    checkpoint stays before its event."""
    cluster_store.append("Account", "a1", [Deposited(amount=1)], 0)
    partition = cluster_store.keys.partition_of("a1")
    projection = Projection(cluster_store, "stray")
    nodes = cast(RedisCluster, cluster_store.client)
    own = key_slot(projection.key("x").encode())
    home = nodes.get_node_from_key(  # type: ignore[no-untyped-call]
        projection.key("x")
    )
    strays: dict[str, str] = {}
    for n in range(1000):
        key = f"stray-{n}"
        node = nodes.get_node_from_key(  # type: ignore[no-untyped-call]
            key
        )
        kind = "same node" if node.name == home.name else "other node"
        if key_slot(key.encode()) != own:
            strays.setdefault(kind, key)
    assert set(strays) == {"same node", "other node"}
    for kind, stray in strays.items():

        @projection.on(Deposited)
        def _deposited(event: Deposited, ctx: ProjectionContext, stray: str = stray) -> None:
            ctx.pipe.incr(ctx.key("count"))
            ctx.pipe.set(stray, 1)

        with pytest.raises(ProjectionError, match=r"ctx\.key") as info:
            projection.run(until_caught_up=True)
        assert info.value.position == 1, kind
        assert projection.checkpoint().position(partition) == 0, kind
        projection._handlers.clear()
