"""Catch-up subscriptions: history then live, filters, resume, stop, and the ``$`` pitfall."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
import redis
import redis.asyncio

from eventstore import FROM_NOW, CatchUpSubscription, Checkpoint, EventStore, RecordedEvent
from tests.domain import Deposited, Opened, Withdrawn
from tests.fronts import Front, open_store


def _take(sub: CatchUpSubscription, n: int) -> list[RecordedEvent]:
    out: list[RecordedEvent] = []
    if n == 0:
        return out
    for recorded in sub:
        out.append(recorded)
        if len(out) == n:
            break
    return out


def _later(delay: float, fn: Callable[[], object]) -> threading.Thread:
    def run() -> None:
        time.sleep(delay)
        fn()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


pytestmark = [pytest.mark.both_fronts, pytest.mark.all_servers]


@pytest.fixture
def partitioned(redis_url: str, namespace: str, front: Front) -> Iterator[EventStore]:
    with open_store(front, redis_url, namespace=namespace, partitions=3) as opened:
        yield opened


def test_history_then_live_events(store: EventStore) -> None:
    store.append("Account", "a1", [Opened(owner="ann"), Deposited(amount=5)], 0)
    with store.subscribe(block_ms=200) as sub:
        history = _take(sub, 2)
        assert [e.event for e in history] == [Opened(owner="ann"), Deposited(amount=5)]
        writer = _later(0.3, lambda: store.append("Account", "a1", [Withdrawn(amount=2)], 2))
        (live,) = _take(sub, 1)
        writer.join()
        assert sub.caught_up
        assert (live.event, live.version, live.position) == (Withdrawn(amount=2), 3, 3)
        assert sub.checkpoint == Checkpoint((3,))


def test_caught_up_is_set_once_history_is_drained(store: EventStore) -> None:
    with store.subscribe(block_ms=100) as sub:
        assert not sub.caught_up
        stopper = _later(0.2, sub.stop)
        assert list(sub) == []
        stopper.join()
        assert sub.caught_up


def test_resume_from_checkpoint_string_delivers_the_rest_once(partitioned: EventStore) -> None:
    for i in range(12):
        partitioned.append("Account", f"a{i}", [Opened(owner="o"), Deposited(amount=i)], 0)
    with partitioned.subscribe(page_size=4) as first:
        seen = _take(first, 9)
        saved = str(first.checkpoint)
    with partitioned.subscribe(after=saved, page_size=4) as second:
        seen += _take(second, 24 - 9)
    assert sorted(e.event_id for e in seen) == sorted(e.event_id for e in partitioned.read_all())
    assert len({e.event_id for e in seen}) == 24


def test_filters_skip_other_events_and_move_the_checkpoint(store: EventStore) -> None:
    store.append("Account", "a1", [Opened(owner="x"), Deposited(amount=1)], 0)
    store.append("Wallet", "w1", [Deposited(amount=2), Withdrawn(amount=1)], 0)
    store.append("Account", "a1", [Withdrawn(amount=1)], 2)
    with store.subscribe(event_types=["Deposited"], aggregate_types=["Account"]) as sub:
        (only,) = _take(sub, 1)
        writer = _later(0.2, lambda: store.append("Account", "a2", [Deposited(amount=9)], 0))
        (live,) = _take(sub, 1)
        writer.join()
    assert (only.aggregate_id, only.event) == ("a1", Deposited(amount=1))
    assert (live.aggregate_id, live.position) == ("a2", 6)
    assert sub.checkpoint == Checkpoint((6,))


def test_from_now_delivers_only_new_events(partitioned: EventStore) -> None:
    partitioned.append("Account", "old", [Opened(owner="x")], 0)
    with partitioned.subscribe(after=FROM_NOW, block_ms=200) as sub:
        writer = _later(0.2, lambda: partitioned.append("Account", "new", [Opened(owner="y")], 0))
        (recorded,) = _take(sub, 1)
        writer.join()
    assert recorded.aggregate_id == "new"


def test_stop_from_another_thread_ends_a_blocked_read(partitioned: EventStore) -> None:
    with partitioned.subscribe(block_ms=300) as sub:
        received: list[RecordedEvent] = []
        stopper = _later(0.3, sub.stop)
        started = time.monotonic()
        received.extend(sub)
        stopper.join()
        assert received == []
        assert sub.stopped
        assert time.monotonic() - started < 5


def test_events_written_between_two_reads_are_not_skipped(store: EventStore) -> None:
    """Regression for the ``$`` pitfall: reading from ``$`` after a delivered event skips
    whatever was appended while the consumer was busy; concrete ids do not."""
    store.append("Account", "a1", [Opened(owner="x")], 0)
    with store.subscribe(block_ms=100) as sub:
        (first,) = _take(sub, 1)
        # the consumer is "busy" here: these land while no read is in flight
        store.append("Account", "a1", [Deposited(amount=1)], 1)
        store.append("Account", "a2", [Opened(owner="y")], 0)
        rest = _take(sub, 2)
    assert [e.position for e in [first, *rest]] == [1, 2, 3]
    # what `XREAD BLOCK ... $` would have done in the same spot: nothing, then timeout
    assert store.client.xread({store.keys.log(0): "$"}, block=50) in ([], None, {})


def test_subscription_reconnects_after_its_connection_is_killed(store: EventStore) -> None:
    store.append("Account", "a1", [Opened(owner="x")], 0)
    with store.subscribe(block_ms=200) as sub:
        _take(sub, 1)

        def kill_and_write() -> None:
            store.client.client_kill_filter(_type="normal", skipme=True)
            store.append("Account", "a1", [Deposited(amount=4)], 1)

        writer = _later(0.3, kill_and_write)
        (after_kill,) = _take(sub, 1)
        writer.join()
    assert (after_kill.version, after_kill.position) == (2, 2)


def test_dedicated_connection_blocks_longer_than_it_waits(store: EventStore) -> None:
    with store.subscribe(block_ms=45_000) as sub:
        own = sub._client
        assert own is not None
        assert own.connection_pool.connection_kwargs["socket_timeout"] > 45
        # its own pool, not the store's (whose connections never block)
        assert isinstance(own, redis.Redis | redis.asyncio.Redis)
        assert own.connection_pool is not store.client.connection_pool


def test_wait_until_caught_up_from_another_thread(partitioned: EventStore) -> None:
    for i in range(7):
        partitioned.append("Account", f"a{i}", [Opened(owner="o")], 0)
    received: list[RecordedEvent] = []
    with partitioned.subscribe(page_size=2, block_ms=100) as sub:
        reader = threading.Thread(target=lambda: received.extend(sub))
        reader.start()
        assert sub.wait_until_caught_up(10)
        sub.stop()
        reader.join()
    assert sorted(e.aggregate_id for e in received) == [f"a{i}" for i in range(7)]
    assert sub.checkpoint == partitioned.head()
