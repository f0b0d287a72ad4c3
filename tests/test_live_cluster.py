"""Live notifications on a Redis 7 Cluster: sharded Pub/Sub (SPUBLISH / SSUBSCRIBE).

Each notification goes on ``{<ns>:pN}:live:<Type>``, in the slot of the partition's keys,
so only the node owning that slot carries it; a feed subscribes on every node it needs.
Each test runs on both fronts (the async one through ``BlockingAsyncStore``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import redis
from redis.cluster import RedisCluster

from eventstore import EventStore, LiveFeed, LiveNotification
from eventstore.testing import RedisClusterServers
from tests.domain import Deposited, Opened, Withdrawn
from tests.fronts import FRONTS, Front, open_store

pytestmark = pytest.mark.slow


@pytest.fixture(params=FRONTS)
def front(request: pytest.FixtureRequest) -> Front:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def cluster_store(
    cluster: RedisClusterServers, namespace: str, front: Front
) -> Iterator[EventStore]:
    """A store of each front with 6 partitions spread over the flushed cluster."""
    cluster.flush()
    with open_store(front, cluster.url, namespace=namespace, partitions=6) as opened:
        yield opened


def _next(feed: LiveFeed, timeout: float = 5) -> LiveNotification:
    timer = threading.Timer(timeout, feed.stop)
    timer.start()
    try:
        return next(feed)
    finally:
        timer.cancel()


def _shard_of(store: EventStore, aggregate_id: str) -> str:
    log = store.keys.log(store.keys.partition_of(aggregate_id))
    return str(store.client.get_node_from_key(log).name)  # type: ignore[attr-defined]


def _one_id_per_shard(store: EventStore) -> list[str]:
    """Aggregate ids whose partitions are owned by different nodes, one per node."""
    found: dict[str, str] = {}
    for i in range(200):
        found.setdefault(_shard_of(store, f"agg-{i}"), f"agg-{i}")
    assert len(found) == 3
    return sorted(found.values())


def test_a_7_cluster_sends_sharded_notifications(cluster_store: EventStore) -> None:
    assert cluster_store.live_channels.sharded
    ids = _one_id_per_shard(cluster_store)
    with cluster_store.live("Account") as feed:
        results = [cluster_store.append("Account", i, [Opened(owner=i)], 0) for i in ids]
        notes = [_next(feed) for _ in ids]
    assert [r.notified for r in results] == [1, 1, 1]  # SPUBLISH counts the shard's receivers
    assert sorted(n.aggregate_id for n in notes) == ids
    for note in notes:
        partition = cluster_store.keys.partition_of(note.aggregate_id)
        assert note.channel == cluster_store.keys.live_shard_channel(partition, "Account")
        assert (note.partition, note.version, note.event_type) == (partition, 1, "Opened")
        assert feed.fetch(note).event == Opened(owner=note.aggregate_id)


def test_classic_subscribers_get_nothing_on_a_sharded_cluster(
    cluster_store: EventStore, cluster: RedisClusterServers
) -> None:
    listener = RedisCluster.from_url(cluster.seed_url)
    classic = listener.pubsub()  # type: ignore[no-untyped-call, unused-ignore]
    classic.subscribe(cluster_store.keys.live_channel("Account"))
    try:
        with cluster_store.live("Account") as feed:
            for i in _one_id_per_shard(cluster_store):
                cluster_store.append("Account", i, [Opened(owner=i)], 0)
                assert _next(feed).aggregate_id == i
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            message = classic.get_message(timeout=0.1)
            assert message is None or message["type"] == "subscribe", message
    finally:
        classic.close()
        listener.close()


def test_selection_by_type_event_type_and_id_across_shards(cluster_store: EventStore) -> None:
    a1, a2, w1 = _one_id_per_shard(cluster_store)
    with (
        cluster_store.live("Wallet") as wallets,
        cluster_store.live(["Account", "Wallet"], event_types="Withdrawn") as withdrawals,
        cluster_store.live(["Account"], aggregate_ids=[a2]) as one_account,
    ):
        cluster_store.append("Account", a1, [Opened(owner="x"), Withdrawn(amount=1)], 0)
        cluster_store.append("Account", a2, [Opened(owner="y")], 0)
        cluster_store.append("Wallet", w1, [Deposited(amount=5)], 0)
        assert _next(wallets).aggregate_id == w1
        assert (_next(withdrawals).aggregate_id, _next(one_account).aggregate_id) == (a1, a2)
        cluster_store.append("Wallet", w1, [Withdrawn(amount=2)], 1)
        cluster_store.append("Account", a2, [Withdrawn(amount=1)], 1)
        # one connection per node: no order across partitions, as with the logs
        assert sorted(_next(withdrawals).aggregate_id for _ in range(2)) == sorted([w1, a2])
        assert _next(one_account).version == 2
        assert _next(wallets).version == 2


def test_a_message_on_any_shard_arrives_without_waiting_for_the_others(
    cluster_store: EventStore,
) -> None:
    # redis-py's get_sharded_message(timeout=t) waits t on each node in turn: with
    # poll_seconds=2 a notification on the last node would wait up to 4 s that way
    with cluster_store.live("Account", poll_seconds=2.0) as feed:
        for i in _one_id_per_shard(cluster_store):
            for version in range(1, 3):
                threading.Timer(
                    0.3, cluster_store.append, ("Account", i, [Deposited(amount=1)], version - 1)
                ).start()
                started = time.monotonic()
                note = _next(feed)
                assert (note.aggregate_id, note.version) == (i, version)
                assert time.monotonic() - started < 1.0


def test_sharded_subscriber_counts_per_channel_and_type(
    cluster_store: EventStore, cluster: RedisClusterServers
) -> None:
    keys = cluster_store.keys
    assert cluster_store.live_stats().channels == {}
    # the feeds of one store share its node connections: counts are of stores listening
    with (
        EventStore.from_url(cluster.url, namespace=cluster_store.namespace) as other,
        cluster_store.live("Account"),
        cluster_store.live("Account"),
        other.live(["Account", "Wallet"]),
    ):
        stats = cluster_store.live_stats()
        assert stats.sharded
        assert stats.channels == {
            **{keys.live_shard_channel(p, "Account"): 2 for p in range(6)},
            **{keys.live_shard_channel(p, "Wallet"): 1 for p in range(6)},
        }
        assert stats.by_type == {"Account": 2, "Wallet": 1}
        assert (stats.patterns, stats.total) == (0, 18)
        assert cluster_store.append("Account", "a1", [Opened(owner="x")], 0).notified == 2
    deadline = time.monotonic() + 5
    while cluster_store.live_stats().channels and time.monotonic() < deadline:
        time.sleep(0.05)  # the server drops a closed connection's subscriptions
    assert cluster_store.live_stats().channels == {}


def _collect_until(feed: LiveFeed, aggregate_type: str) -> tuple[threading.Thread, list[str]]:
    seen: list[str] = []

    def run() -> None:
        for note in feed:
            seen.append(note.aggregate_type)
            if note.aggregate_type == aggregate_type:
                return

    reader = threading.Thread(target=run)
    reader.start()
    return reader, seen


def test_every_type_discovers_types_added_later(cluster_store: EventStore) -> None:
    cluster_store.append("Account", "a1", [Opened(owner="x")], 0)
    with cluster_store.live(discover_seconds=0.2) as everything:
        assert cluster_store.live_stats().by_type == {"Account": 1}
        cluster_store.append("Account", "a2", [Opened(owner="y")], 0)  # another partition
        assert _next(everything).aggregate_id == "a2"
        reader, seen = _collect_until(everything, "Wallet")
        version = 0
        deadline = time.monotonic() + 10
        while reader.is_alive() and time.monotonic() < deadline:
            # a new type's notifications before it is discovered are lost: keep sending
            version += 1
            cluster_store.append("Wallet", "w1", [Deposited(amount=version)], version - 1)
            time.sleep(0.05)
        everything.stop()
        reader.join()
        assert seen[-1:] == ["Wallet"]
        assert cluster_store.live_stats().by_type == {"Account": 1, "Wallet": 1}


def test_feed_resubscribes_after_a_node_kills_its_connection(cluster_store: EventStore) -> None:
    aggregate_id = _one_id_per_shard(cluster_store)[0]
    host, port = _shard_of(cluster_store, aggregate_id).rsplit(":", 1)
    with (
        redis.Redis(host=host, port=int(port)) as node,
        cluster_store.live("Account", poll_seconds=0.05) as feed,
    ):
        assert int(node.client_kill_filter(_type="pubsub")) >= 1
        arrived: list[LiveNotification] = []
        reader = threading.Thread(target=lambda: arrived.append(_next(feed, timeout=10)))
        reader.start()
        version = 0
        deadline = time.monotonic() + 10
        while reader.is_alive() and time.monotonic() < deadline:
            version += 1  # hints published before the re-subscribe are lost: keep sending
            cluster_store.append("Account", aggregate_id, [Deposited(amount=1)], version - 1)
            time.sleep(0.05)
        reader.join()
    assert arrived
    assert arrived[0].aggregate_id == aggregate_id
