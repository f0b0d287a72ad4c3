"""A server restart (AOF on) during a live subscription: it reconnects and misses nothing."""

from __future__ import annotations

import threading
from typing import TypeVar

import pytest

from eventstore import EventStore, RecordedEvent, SubscriptionError
from eventstore.testing import RedisServer
from tests.domain import Deposited, Opened
from tests.fronts import Front, open_store
from tests.waiting import retrying, wait_for

T = TypeVar("T")

pytestmark = pytest.mark.both_fronts


def _append(store: EventStore, aggregate_id: str, version: int, amount: int) -> None:
    event = Opened(owner="x") if version == 0 else Deposited(amount=amount)
    event_id = f"{aggregate_id}-{version + 1}"
    retrying(
        lambda: store.append("Account", aggregate_id, [event], version, event_ids=[event_id]),
        attempts=100,
    )


@pytest.mark.slow
@pytest.mark.parametrize("partitions", [1, 2])
def test_live_subscription_survives_a_server_restart(
    aof_server: RedisServer, partitions: int, front: Front
) -> None:
    store = open_store(front, aof_server.url, namespace="rs", partitions=partitions)
    received: list[RecordedEvent] = []
    sub = store.subscribe(block_ms=200, reconnect_for=30)

    def consume() -> None:
        received.extend(sub)

    reader = threading.Thread(target=consume)
    try:
        reader.start()
        for version in range(5):
            _append(store, "a1", version, version)
            _append(store, "b2", version, version)
        wait_for(lambda: len(received) == 10, timeout=15)

        aof_server.restart()
        for version in range(5, 10):  # some land before the subscription has reconnected
            _append(store, "a1", version, version)
            _append(store, "b2", version, version)
        wait_for(lambda: len(received) == 20, timeout=15)
    finally:
        sub.stop()
        reader.join(10)
        sub.close()
        store.close()

    assert len({e.event_id for e in received}) == 20
    for aggregate_id in ("a1", "b2"):
        versions = [e.version for e in received if e.aggregate_id == aggregate_id]
        assert versions == list(range(1, 11))
    for partition in range(partitions):
        positions = [e.position for e in received if e.partition == partition]
        assert positions == list(range(1, len(positions) + 1))


def test_gives_up_after_reconnect_for_with_the_checkpoint_to_resume_from(
    aof_server: RedisServer, front: Front
) -> None:
    store = open_store(front, aof_server.url, namespace="gone")
    store.append("Account", "a1", [Opened(owner="x"), Deposited(amount=1)], 0)
    try:
        with store.subscribe(block_ms=100, reconnect_for=0.5) as sub:
            delivered = [next(sub)]
            aof_server.stop()
            with pytest.raises(SubscriptionError) as info:
                delivered.extend(sub)  # the rest of the page already read, then no server
            assert [e.position for e in delivered] == [1, 2]
            assert sub.checkpoint.position(0) == 2
            assert info.value.checkpoint == "2"
    finally:
        aof_server.start()
        store.close()
