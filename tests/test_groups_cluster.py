"""Consumer groups on a Redis Cluster: partitions on every primary, read one by one.

The group suites (test_groups.py and the review tests) run on the cluster too; these tests
add what only a cluster has: partitions spread over several nodes, and workers that wait
on sharded notifications instead of a blocking XREADGROUP.
"""

from __future__ import annotations

import functools
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest

from eventstore import EventStore, RecordedEvent
from eventstore.testing import RedisClusterServers
from tests.cluster_helpers import spread_namespace
from tests.domain import Deposited
from tests.letters import event_of
from tests.waiting import wait_for

pytestmark = pytest.mark.slow

FAST = timedelta(milliseconds=100)


def _nodes_of(store: EventStore) -> set[str]:
    cluster = store.client
    return {
        cluster.get_node_from_key(store.keys.log(p)).name  # type: ignore[attr-defined]
        for p in range(store.partitions)
    }


def test_from_url_with_cluster_true_and_any_node_as_seed(
    cluster: RedisClusterServers, namespace: str
) -> None:
    cluster.flush()
    seeds = [f"redis://127.0.0.1:{node.port}" for node in cluster.primaries()[1:]]
    with EventStore.from_url(seeds[0], namespace=namespace, partitions=6, cluster=True) as store:
        assert store.is_cluster
        assert len(_nodes_of(store)) == 3  # 6 partitions spread over the 3 primaries
        store.append("Account", "a", [Deposited(amount=1)], 0)
    with EventStore.from_url(seeds[1], namespace=namespace, cluster=True) as again:
        assert again.partitions == 6  # adopted from the namespace, through another seed
        assert [r.version for r in again.read("Account", "a")] == [1]


@pytest.fixture
def store6(cluster: RedisClusterServers, namespace: str) -> Iterator[EventStore]:
    """6 partitions on the flushed cluster, on all 3 primaries."""
    cluster.flush()
    spread = spread_namespace(cluster, namespace, 6)
    with EventStore.from_url(cluster.url, namespace=spread, partitions=6) as store:
        assert len(_nodes_of(store)) == 3
        yield store


def _append(store: EventStore, count: int, prefix: str = "a") -> list[str]:
    ids = [f"{prefix}{i}-event" for i in range(count)]
    for i, event_id in enumerate(ids):
        store.append("Account", f"{prefix}{i}", [Deposited(amount=1)], 0, event_ids=[event_id])
    return ids


def test_competing_workers_share_every_partition_once_with_dead_letters(
    store6: EventStore,
) -> None:
    ids = _append(store6, 60)
    group = store6.consumer_group("g")
    assert group.lag() == 60
    poison = {ids[7], ids[31]}
    handled = Counter[str]()
    lock = threading.Lock()

    def handler(recorded: RecordedEvent) -> None:
        if recorded.event_id in poison:
            raise ValueError(f"poison {recorded.event_id}")
        with lock:
            handled[recorded.event_id] += 1

    workers = [
        group.worker(f"w{i}", handler, max_deliveries=2, claim_idle=FAST, batch_size=4)
        for i in range(2)
    ]
    threads = [threading.Thread(target=w.run, kwargs={"stop_when_idle": True}) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    assert sorted(handled) == sorted(set(ids) - poison)
    assert set(handled.values()) == {1}  # nobody handled an event twice
    assert sum(w.stats.processed for w in workers) == 58
    dead = group.dead_letters()
    assert sorted(event_of(d).event_id for d in dead) == sorted(poison)
    status = group.status()
    assert len(status) == 6
    assert sum(s.dead_letters for s in status) == 2
    assert all((s.lag, s.pending) == (0, 0) for s in status)
    assert all(s.delivered_position == s.last_position for s in status)

    # replay goes to each dead letter's own partition: the workers pick them up again
    poison.clear()
    assert group.replay_dead_letters() == 2
    assert group.lag() == 2
    workers[0].run(stop_when_idle=True)
    assert sorted(handled) == sorted(ids)
    assert (group.lag(), group.pending(), group.dead_letters()) == (0, 0, [])
    # the trim safe point of every partition is past what the group has handled
    for result in store6.trim_log():
        assert result.safe_point == status[result.partition].last_position + 1


def test_an_idle_worker_wakes_on_sharded_notifications(store6: EventStore) -> None:
    """append -> handler latency with the worker asleep: well below its block time."""
    group = store6.consumer_group("latency", start="end")
    _append(store6, 6, prefix="warm")  # the types the hint feed subscribes to exist
    arrived: dict[str, float] = {}

    def handler(recorded: RecordedEvent) -> None:
        arrived[recorded.aggregate_id] = time.perf_counter()

    worker = group.worker("w", handler, block=timedelta(seconds=2), claim_idle=timedelta(hours=1))
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        wait_for(lambda: len(arrived) == 6)  # the warm-up events, then idle
        latencies = []
        for i in range(20):
            time.sleep(0.05)  # the worker is asleep on Pub/Sub again
            sent = time.perf_counter()
            name = f"late{i}"
            store6.append("Account", name, [Deposited(amount=1)], 0)
            wait_for(functools.partial(arrived.__contains__, name))
            latencies.append(arrived[name] - sent)
    finally:
        worker.stop()
        thread.join(10)
    # a missed notification would cost the whole 2 s block: every one must be far below
    assert max(latencies) < 0.5, latencies
    print(f"append->handler on a cluster: median {statistics.median(latencies) * 1000:.1f} ms")
