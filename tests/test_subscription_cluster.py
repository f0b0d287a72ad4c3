"""On a Redis Cluster: catch-up reads work, and the live phase polls on Pub/Sub hints.

One XREAD cannot wait on logs in several slots, so there the subscription polls every
partition log from its cursor and sleeps until a notification (or ``block_ms``) wakes it.
On this Redis 7 cluster the hints are sharded (SSUBSCRIBE on every partition's channel).
"""

from __future__ import annotations

import threading
import time

import pytest

from eventstore import EventStore, RecordedEvent
from eventstore.testing import RedisClusterServers
from tests.domain import Deposited, Opened

pytestmark = pytest.mark.slow


def _collect(sub: object, received: list[RecordedEvent], n: int) -> threading.Thread:
    def run() -> None:
        for recorded in sub:  # type: ignore[attr-defined]
            received.append(recorded)
            if len(received) == n:
                return

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_history_then_live_events_on_a_cluster(cluster_store: EventStore) -> None:
    for i in range(12):
        cluster_store.append("Account", f"a{i}", [Opened(owner="x"), Deposited(amount=i)], 0)
    assert len(list(cluster_store.read_all(page_size=5))) == 24
    received: list[RecordedEvent] = []
    with cluster_store.subscribe(block_ms=5000, page_size=5) as sub:
        reader = _collect(sub, received, 26)
        assert sub.wait_until_caught_up(10)
        stats = cluster_store.live_stats()  # the hints: every partition's Account channel
        assert (stats.sharded, stats.by_type, len(stats.channels)) == (True, {"Account": 1}, 6)
        started = time.monotonic()
        cluster_store.append("Account", "late-1", [Opened(owner="y")], 0)
        cluster_store.append("Account", "late-2", [Opened(owner="z")], 0)
        reader.join(10)
        assert len(received) == 26
        assert time.monotonic() - started < 4, "the hint did not wake the reader up"
    assert len({e.event_id for e in received}) == 26
    for partition in range(6):
        positions = [e.position for e in received if e.partition == partition]
        assert positions == list(range(1, len(positions) + 1))
    assert sub.checkpoint == cluster_store.head()


def test_a_filtered_subscription_wakes_on_its_types_and_delivers_each_event_once(
    cluster_store: EventStore,
) -> None:
    for i in range(6):
        cluster_store.append("Account", f"a{i}", [Opened(owner="x")], 0)
        cluster_store.append("Wallet", f"w{i}", [Deposited(amount=i)], 0)
    received: list[RecordedEvent] = []
    with cluster_store.subscribe(aggregate_types=["Wallet"], block_ms=5000, page_size=4) as sub:
        reader = _collect(sub, received, 10)
        assert sub.wait_until_caught_up(10)
        assert cluster_store.live_stats().by_type == {"Wallet": 1}
        started = time.monotonic()
        for i in range(4):
            cluster_store.append("Account", f"a{i}", [Deposited(amount=1)], 1)
            cluster_store.append("Wallet", f"w{i}", [Deposited(amount=1)], 1)
        reader.join(10)
        assert time.monotonic() - started < 4, "the Wallet hints did not wake the reader up"
    assert len(received) == 10
    assert {e.aggregate_type for e in received} == {"Wallet"}
    assert len({e.event_id for e in received}) == 10
    assert sorted((e.aggregate_id, e.version) for e in received) == sorted(
        [(f"w{i}", 1) for i in range(6)] + [(f"w{i}", 2) for i in range(4)]
    )


def test_without_hints_the_cluster_reader_still_polls(
    cluster: RedisClusterServers, namespace: str
) -> None:
    cluster.flush()
    with EventStore.from_url(cluster.url, namespace=namespace, notify=False) as quiet:
        received: list[RecordedEvent] = []
        with quiet.subscribe(block_ms=200) as sub:
            reader = _collect(sub, received, 1)
            assert sub.wait_until_caught_up(10)
            quiet.append("Account", "a1", [Opened(owner="x")], 0)
            reader.join(10)
        assert [e.aggregate_id for e in received] == ["a1"]


def test_catch_up_reads_ahead_on_every_node(cluster_store: EventStore) -> None:
    # ~20 events per partition in pages of 3: each node's line holds reads written ahead
    # for the two partitions it serves, answered in the order they were written
    for i in range(40):
        batch = [Opened(owner="x"), Deposited(amount=1), Deposited(amount=2)]
        cluster_store.append("Account", f"n{i}", batch, 0)
    events = list(cluster_store.read_all(page_size=3))
    assert len({e.event_id for e in events}) == 120
    for partition in range(6):
        positions = [e.position for e in events if e.partition == partition]
        assert positions == list(range(1, cluster_store.last_position(partition) + 1))
    deposits = list(cluster_store.read_all(page_size=3, event_types=["Deposited"]))
    assert [e.event_id for e in deposits] == [
        e.event_id for e in events if e.event_type == "Deposited"
    ]
    early = cluster_store.read_all(page_size=3)
    assert len([next(early) for _ in range(10)]) == 10
    early.close()  # type: ignore[attr-defined]  # lines with replies unread: dropped
    assert cluster_store.version_of("Account", "n7") == 3
    assert len(list(cluster_store.read_all(page_size=7))) == 120
