"""The store on a 3-primary Redis Cluster: every script call stays in one slot."""

from __future__ import annotations

import pytest

from eventstore import Durability, EventStore, Projection, ProjectionContext, Repository
from eventstore.testing import EventStoreContract, RedisClusterServers
from tests.domain import Account, Deposited, Opened
from tests.fronts import Front, open_store

pytestmark = pytest.mark.slow


class TestClusterContract(EventStoreContract):
    @pytest.fixture
    def store(self, cluster_store: EventStore) -> EventStore:
        return cluster_store


def test_partitions_spread_over_shards(cluster_store: EventStore) -> None:
    assert cluster_store.is_cluster
    shards = {
        cluster_store.client.get_node_from_key(cluster_store.keys.log(p)).name  # type: ignore[attr-defined]
        for p in range(cluster_store.partitions)
    }
    assert len(shards) > 1


def test_repository_round_trip_and_snapshots(cluster_store: EventStore) -> None:
    accounts = Repository(cluster_store, Account, snapshot_every=3)
    for i in range(12):
        account = Account(id=f"acc-{i}")
        account.open(f"owner {i}")
        for amount in range(1, 5):
            account.deposit(amount)
        accounts.save(account)
    for i in range(12):
        loaded = accounts.get(f"acc-{i}")
        assert (loaded.owner, loaded.balance, loaded.version) == (f"owner {i}", 10, 5)
        snapshot = cluster_store.read_snapshot("Account", f"acc-{i}")
        assert snapshot is not None
        assert snapshot.version == 5


def test_durability_wait_runs_on_the_shard_connection(
    cluster: RedisClusterServers, namespace: str, front: Front
) -> None:
    cluster.flush()
    # no replicas in this cluster: WAIT 0 returns at once; the point is that the script and
    # WAIT go through one shard connection (a cluster pipeline would refuse EVALSHA)
    with open_store(
        front,
        cluster.url,
        namespace=namespace,
        partitions=3,
        durability=Durability(replicas=0, fsync=False),
    ) as store:
        accounts = Repository(store, Account)
        account = Account(id="durable")
        account.open("x")
        store.durability = Durability(replicas=0, timeout_ms=10)
        assert accounts.save(account) is not None
        assert accounts.get("durable").owner == "x"


def test_a_valkey_cluster_runs_the_store_its_projections_and_live_feeds(
    valkey_cluster: RedisClusterServers, namespace: str
) -> None:
    """Each node is asked what it is: Valkey 9.1, with sharded notifications."""
    valkey_cluster.flush()
    with EventStore.from_url(valkey_cluster.url, namespace=namespace, partitions=6) as store:
        assert {info.product for info in store.servers} == {"Valkey"}
        assert len(store.servers) == 3  # the primaries
        assert store.live_channels.sharded
        for i in range(12):
            store.append("Account", f"a{i}", [Opened(owner="x"), Deposited(amount=i)], 0)
        projection = Projection(store, "sums", page_size=4)

        @projection.on(Deposited)
        def _deposited(event: Deposited, ctx: ProjectionContext) -> None:
            ctx.pipe.incrby(ctx.key("sum"), event.amount)

        with projection:
            assert projection.wait_until_caught_up(10)
            store.append("Account", "late", [Deposited(amount=100)], 0)
            assert projection.wait_until_caught_up(10)  # woken by a sharded hint
        assert int(store.client.get(projection.key("sum")) or 0) == sum(range(12)) + 100
        assert projection.checkpoint() == store.head()
