"""A worker's read spans every partition (and retry) stream: the batch is one whole.

The entries of later streams wait while the earlier streams' entries are handled. They
were only renewed by the loop of their own stream, so after ``claim_idle`` of healthy
work on partition 0, partition 1's entries looked abandoned: another worker claimed and
ran them, and the first worker ran them too.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest

from eventstore import EventStore, RecordedEvent
from tests.domain import Deposited

# the same tests on one server and on a Redis Cluster (one partition per slot)
pytestmark = pytest.mark.also_on_cluster


@pytest.fixture
def store2(redis_url: str, namespace: str) -> Iterator[EventStore]:
    with EventStore.from_url(redis_url, namespace=namespace, partitions=2) as opened:
        yield opened


def _append_per_partition(store: EventStore, per_partition: int) -> None:
    counts = [0] * store.partitions
    index = 0
    while min(counts) < per_partition:
        aggregate_id, index = f"a{index}", index + 1
        partition = store.keys.partition_of(aggregate_id)
        if counts[partition] < per_partition:
            counts[partition] += 1
            store.append("Account", aggregate_id, [Deposited(amount=1)], 0)


def test_entries_of_a_later_partition_are_not_claimed_while_they_wait(
    store2: EventStore,
) -> None:
    _append_per_partition(store2, 5)
    group = store2.consumer_group("g")
    handled: Counter[str] = Counter()
    lock = threading.Lock()

    def healthy(recorded: RecordedEvent) -> None:
        time.sleep(0.1)  # a third of claim_idle: well within the contract
        with lock:
            handled[recorded.event_id] += 1

    idle = timedelta(milliseconds=300)
    first = group.worker("w1", healthy, claim_idle=idle, batch_size=5)
    second = group.worker("w2", healthy, claim_idle=idle, batch_size=5)
    threads = [threading.Thread(target=first.run, kwargs={"stop_when_idle": True})]
    threads[0].start()
    time.sleep(0.05)  # w1 has read all ten entries (five per partition)
    threads.append(threading.Thread(target=second.run, kwargs={"stop_when_idle": True}))
    threads[1].start()
    for thread in threads:
        thread.join(10)
    assert len(handled) == 10
    assert set(handled.values()) == {1}, handled
    assert first.stats.processed + second.stats.processed == 10


def test_a_stop_mid_batch_releases_the_untried_entries_of_every_stream(
    store2: EventStore,
) -> None:
    _append_per_partition(store2, 5)
    group = store2.consumer_group("g")
    handled: Counter[str] = Counter()
    started = threading.Event()

    def slow(recorded: RecordedEvent) -> None:
        started.set()
        time.sleep(0.05)
        handled[recorded.event_id] += 1

    worker = group.worker("w1", slow, claim_idle=timedelta(seconds=30), batch_size=10)
    thread = threading.Thread(target=worker.run)
    thread.start()
    assert started.wait(5)
    worker.stop()
    thread.join(5)
    assert 1 <= len(handled) < 10
    released = [e for p in range(2) for e in group.pending_entries(p)]
    assert len(released) == 10 - len(handled)
    assert {e.deliveries for e in released} == {0}  # handed back untried
    other = group.worker(
        "w2", lambda r: handled.update([r.event_id]), claim_idle=timedelta(milliseconds=60)
    )
    other.run(stop_when_idle=True)
    assert len(handled) == 10
    assert set(handled.values()) == {1}
