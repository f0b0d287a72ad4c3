"""A Redis Cluster primary is SIGKILLed under load: its replica takes over, nothing
acknowledged is lost when appends wait for a replica, and the store carries on by itself.

Its own cluster (3 primaries, a replica each, cluster-node-timeout 2 s): the shared
session cluster must not change topology under other tests.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import cast

import attrs
import pytest

from eventstore import (
    ConcurrencyError,
    Durability,
    DurabilityError,
    EventStore,
    Projection,
    ProjectionContext,
)
from eventstore._core.records import Entries
from eventstore.testing import RedisClusterServers, RedisServer
from tests.cluster_helpers import owner_of, spread_namespace
from tests.domain import Deposited
from tests.fronts import Front, open_store
from tests.waiting import wait_for

pytestmark = pytest.mark.slow

WAIT_FOR_REPLICA = Durability(replicas=1, timeout_ms=5000)


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[RedisClusterServers]:
    servers = RedisClusterServers(primaries=3, replicas=1)
    try:
        servers.start()
        yield servers
    finally:
        servers.close()


@attrs.define
class Writes:
    """What the writers were told: acknowledged events, and how long each append took."""

    acked: dict[tuple[str, int], str] = attrs.field(factory=dict)
    slowest: dict[str, float] = attrs.field(factory=dict)  # aggregate -> longest ack (s)
    unconfirmed: int = 0
    errors: list[BaseException] = attrs.field(factory=list)


def _write(store: EventStore, aggregates: list[str], stop: threading.Event, out: Writes) -> None:
    versions = dict.fromkeys(aggregates, 0)
    turn = 0
    while not stop.is_set():
        aggregate = aggregates[turn % len(aggregates)]
        turn += 1
        version = versions[aggregate] + 1
        event_id = f"{aggregate}-v{version}"
        started = time.monotonic()
        try:
            store.append(
                "Account", aggregate, [Deposited(amount=1)], version - 1, event_ids=[event_id]
            )
        except (DurabilityError, ConcurrencyError):
            # not acknowledged: the write may or may not have survived; look where it is
            out.unconfirmed += 1
            versions[aggregate] = _retrying(
                functools.partial(store.version_of, "Account", aggregate)
            )
            continue
        except Exception as exc:
            out.errors.append(exc)
            return
        took = time.monotonic() - started
        out.acked[(aggregate, version)] = event_id
        out.slowest[aggregate] = max(out.slowest.get(aggregate, 0.0), took)
        versions[aggregate] = version


def _retrying(read: Callable[[], int], seconds: float = 20.0) -> int:
    deadline = time.monotonic() + seconds
    while True:
        try:
            return read()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _check_history(store: EventStore, aggregates: list[str], writes: Writes) -> int:
    """Every acknowledged event present; versions gap-free; ids unique; logs consistent."""
    total = 0
    for aggregate in aggregates:
        events = store.read("Account", aggregate)
        versions = [e.version for e in events]
        assert versions == list(range(1, len(events) + 1)), aggregate
        # one writer per aggregate names each event after its version: no duplicates
        assert [e.event_id for e in events] == [f"{aggregate}-v{v}" for v in versions]
        for (acked_aggregate, version), event_id in writes.acked.items():
            if acked_aggregate == aggregate:
                assert version <= len(events), f"acknowledged {event_id} is lost"
        total += len(events)
    pointers = []
    for partition in range(store.partitions):
        log = cast(Entries, store.client.xrange(store.keys.log(partition)))
        positions = [int(entry_id.split(b"-")[1]) for entry_id, _ in log]
        assert positions == list(range(1, len(log) + 1))  # gap-free after the failover
        assert store.last_position(partition) == len(log)
        pointers += [(fields[b"k"], fields[b"v"]) for _, fields in log]
    assert len(pointers) == len(set(pointers)) == total
    return total


def _kill_primary_of(cluster: RedisClusterServers, key: str) -> tuple[RedisServer, float]:
    """SIGKILL the primary serving ``key``; once its replica is promoted, restart it (it
    comes back as a replica of the promoted node). The new primary, and the seconds from
    the kill to its promotion."""
    doomed = owner_of(cluster, key)
    (replica,) = cluster.replicas_of(doomed)
    killed_at = time.monotonic()
    doomed.stop(kill=True)  # SIGKILL: no shutdown, no last words to the replica
    wait_for(lambda: replica in cluster.primaries(), timeout=30)
    promoted_after = time.monotonic() - killed_at
    doomed.start()  # its nodes.conf makes it rejoin; it learns it lost its slots
    cluster.wait_ready()
    return replica, promoted_after


def test_kill_a_primary_under_writes_loses_nothing_acknowledged(
    own_cluster: RedisClusterServers,
    front: Front,
) -> None:
    namespace = spread_namespace(own_cluster, f"f{uuid.uuid4().hex[:6]}", 3)
    store = open_store(
        front,
        own_cluster.seed_url,
        namespace=namespace,
        partitions=3,
        cluster=True,
        durability=WAIT_FOR_REPLICA,
    )
    handled: set[str] = set()
    worker = store.consumer_group("audit").worker(
        "auditor", lambda r: handled.add(r.event_id), block=timedelta(milliseconds=200)
    )
    auditor = threading.Thread(target=worker.run)
    writers = [[f"w{i}-{k}" for k in range(6)] for i in range(3)]
    aggregates = [a for w in writers for a in w]
    writes, stop = Writes(), threading.Event()
    threads = [threading.Thread(target=_write, args=(store, w, stop, writes)) for w in writers]
    try:
        for thread in [*threads, auditor]:
            thread.start()
        time.sleep(1.0)
        before = len(writes.acked)
        promoted, promoted_after = _kill_primary_of(own_cluster, store.keys.log(0))
        wait_for(lambda: len(writes.acked) > before + 50, timeout=30)
        stop.set()
        for thread in threads:
            thread.join(60)
        assert writes.errors == []
        # appends to the failed primary's partition were held through the failover, then
        # acknowledged: the store re-sent them itself, after refreshing its slot map
        failed_over = [a for a in aggregates if store.keys.partition_of(a) == 0]
        assert max(writes.slowest[a] for a in failed_over) > promoted_after / 2
        assert store.client.get_node_from_key(store.keys.log(0)).port == promoted.port  # type: ignore[attr-defined]
        total = _check_history(store, aggregates, writes)
        assert total >= len(writes.acked)
        # the consumer group carried on too: every event in the store reached the auditor
        wait_for(lambda: len(handled) == total, timeout=30)
    finally:
        stop.set()
        worker.stop()
        auditor.join(30)
        store.close()
    print(
        f"failover: promoted after {promoted_after:.1f}s, {len(writes.acked)} acknowledged, "
        f"{writes.unconfirmed} unconfirmed, longest acknowledged append "
        f"{max(writes.slowest.values()):.1f}s"
    )


def test_without_the_replica_wait_a_failover_can_lose_acknowledged_writes(
    own_cluster: RedisClusterServers,
    front: Front,
) -> None:
    """The loss made certain: the replica is cut off (frozen, its link closed) while the
    primary acknowledges, then the primary dies and the stale replica takes over.

    Appends that did not wait were acknowledged and are gone; the one that waited for a
    replica raised ``DurabilityError`` instead, so its caller was never told it was safe.
    """
    namespace = f"n{uuid.uuid4().hex[:6]}"
    with (
        open_store(front, own_cluster.seed_url, namespace=namespace, cluster=True) as fast,
        open_store(
            front,
            own_cluster.seed_url,
            namespace=namespace,
            cluster=True,
            durability=Durability(replicas=1, timeout_ms=300),
        ) as safe,
    ):
        safe.append("Account", "acc", [Deposited(amount=1)], 0)  # on both nodes
        primary = owner_of(own_cluster, fast.keys.log(0))
        (replica,) = own_cluster.replicas_of(primary)
        assert replica.process is not None
        os.kill(replica.process.pid, signal.SIGSTOP)
        try:
            with contextlib.closing(primary.client()) as client:
                client.client_kill_filter(_type="replica")
            fast.append("Account", "acc", [Deposited(amount=2)], 1)  # acknowledged
            fast.append("Account", "acc", [Deposited(amount=3)], 2)  # acknowledged
            with pytest.raises(DurabilityError) as refused:
                safe.append("Account", "acc", [Deposited(amount=4)], 3)
            assert refused.value.stream == fast.keys.stream("Account", "acc")
            assert [e.version for e in fast.read("Account", "acc")] == [1, 2, 3, 4]
            primary.stop(kill=True)
        finally:
            os.kill(replica.process.pid, signal.SIGCONT)
        wait_for(lambda: replica in own_cluster.primaries(), timeout=30)
        read = functools.partial(fast.version_of, "Account", "acc")
        assert _retrying(read) == 1  # versions 2 and 3 were acknowledged, and are lost
        primary.start()
        own_cluster.wait_ready()


def test_a_projection_carries_on_through_a_failover_of_its_slot_applying_each_event_once(
    own_cluster: RedisClusterServers,
) -> None:
    """The primary holding a projection's slot (model, lease, checkpoints) is SIGKILLed
    in the middle of a run while appends go on: the runner reconnects to the promoted
    replica and, since model and checkpoint are replicated together, ends with every
    event applied exactly once (a commit the replica never got is applied again, with
    its checkpoint)."""
    namespace = spread_namespace(own_cluster, f"p{uuid.uuid4().hex[:6]}", 3)
    store = EventStore.from_url(
        own_cluster.seed_url,
        namespace=namespace,
        partitions=3,
        cluster=True,
        durability=WAIT_FOR_REPLICA,
    )
    projection = Projection(store, "counted", page_size=5, reconnect_for=60)

    @projection.on(Deposited)
    def _deposited(event: Deposited, ctx: ProjectionContext) -> None:
        ctx.pipe.incr(ctx.key("count"))  # not idempotent: a second apply shows
        ctx.pipe.hincrby(ctx.key("seen"), ctx.record.event_id, 1)
        time.sleep(0.002)  # slow enough to be in the middle of the run at the kill

    try:
        for i in range(60):
            store.append("Account", f"acc-{i}", [Deposited(amount=n) for n in range(1, 6)], 0)
        projection.start()
        wait_for(lambda: int(store.client.get(projection.key("count")) or 0) > 20, timeout=30)
        at_kill = int(store.client.get(projection.key("count")) or 0)
        promoted, _ = _kill_primary_of(own_cluster, projection.lease_key)
        for i in range(60, 80):
            store.append("Account", f"acc-{i}", [Deposited(amount=1)], 0)
        assert projection.wait_until_caught_up(60)
        assert projection.error is None
        assert at_kill < 300, "the run was over before the kill"
        node = store.client.get_node_from_key(projection.lease_key)  # type: ignore[attr-defined]
        assert node.port == promoted.port
        assert int(store.client.get(projection.key("count")) or 0) == 60 * 5 + 20
        seen = cast(dict[bytes, bytes], store.client.hgetall(projection.key("seen")))
        assert len(seen) == 320
        assert set(seen.values()) == {b"1"}  # no event applied twice
        assert projection.checkpoint() == store.head()
    finally:
        projection.stop(10)
        store.close()
