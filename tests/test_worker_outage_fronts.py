"""A worker of either front through a server outage (AOF on, fsync always).

The same bodies on the sync and the async front (see ``tests.group_fronts``): the worker
backs off and reconnects, the event in hand when the link dropped (its XACK failed) is
handled again, nothing is skipped; it gives up with ``WorkerDisconnected`` only after
``reconnect_for`` seconds of one continuous outage, its entries still pending.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
import redis

from eventstore import RecordedEvent, WorkerDisconnected
from eventstore.testing import RedisServer
from tests.domain import Deposited
from tests.fronts import Front
from tests.group_fronts import handler, opened, ready, run, until

pytestmark = [pytest.mark.both_fronts, pytest.mark.slow]
CLAIM_IDLE = timedelta(seconds=2)
BLOCK = timedelta(milliseconds=100)


class Held:
    """Counts deliveries and applies each event once (idempotent by event id).

    ``hold_next(event_id)``: that event's handler call signals ``in_hand`` and waits for
    ``release`` (the test takes the server down meanwhile).
    """

    def __init__(self) -> None:
        self.deliveries: Counter[str] = Counter()
        self.applied: list[str] = []
        self.hold: str | None = None
        self.in_hand = threading.Event()
        self.release = threading.Event()

    async def handle(self, record: RecordedEvent) -> None:
        self.deliveries[record.event_id] += 1
        if record.event_id == self.hold:
            self.hold = None
            self.in_hand.set()
            await until(self.release.is_set, 20)
            self.release.clear()
        if record.event_id not in self.applied:
            self.applied.append(record.event_id)

    def hold_next(self, event_id: str) -> None:
        self.in_hand.clear()
        self.hold = event_id


async def append(store: Any, prefix: str, count: int) -> list[str]:
    """One event per aggregate ``<prefix><i>``, retried until the server answers (the
    same event ids make a retry idempotent); the event ids."""
    ids = [f"{prefix}{i}-event" for i in range(count)]
    for i, event_id in enumerate(ids):
        for _ in range(200):
            try:
                event = [Deposited(amount=1)]
                await ready(store.append("Account", f"{prefix}{i}", event, 0, event_ids=[event_id]))
                break
            except redis.ConnectionError:
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("the server did not come back")
    return ids


async def _ensure_up(server: RedisServer) -> None:
    if server.process is None:
        await asyncio.to_thread(server.start)


def test_events_before_during_and_after_an_outage_are_all_handled(
    front: Front, aof_server: RedisServer
) -> None:
    held = Held()

    async def main() -> list[str]:
        async with opened(front, aof_server.url, namespace="wo", partitions=2) as store:
            group = await ready(store.consumer_group("g", start="beginning"))
            worker = group.worker(
                "w1",
                handler(front, held.handle),
                claim_idle=CLAIM_IDLE,
                block=BLOCK,
                reconnect_for=30,
            )
            before = await append(store, "before", 6)
            held.hold_next(before[2])
            running = asyncio.create_task(run(worker, stop_when_idle=True))
            try:
                await until(held.in_hand.is_set, 10)
                await asyncio.to_thread(aof_server.stop)
                held.hold_next(before[2])  # its redelivery is held too: the worker stays busy
                held.release.set()  # the handler returns; its XACK meets a dead link
                await asyncio.sleep(0.5)  # several failed reconnection attempts
                assert not running.done()
                await asyncio.to_thread(aof_server.start)
                during = await append(store, "during", 4)  # may land before the reconnect
                # the unacknowledged event came back: the worker reconnected and drained it
                await until(held.in_hand.is_set, 10)
                after = await append(store, "after", 4)
                held.release.set()
                await asyncio.wait_for(running, 20)
            finally:
                await _ensure_up(aof_server)
                held.release.set()
                worker.stop()
                await asyncio.wait([running], timeout=20)
            assert held.deliveries[before[2]] == 2  # not acknowledged blindly: delivered again
            group = await ready(store.consumer_group("g"))
            assert await ready(group.lag()) == 0
            assert await ready(group.pending()) == 0
            assert await ready(group.dead_letters()) == []
            return before + during + after

    everything = asyncio.run(main())
    assert sorted(held.applied) == sorted(everything)  # exactly once when idempotent
    assert len(held.applied) == len(everything)
    assert set(held.deliveries) == set(everything)  # at least once each


def test_gives_up_after_reconnect_for_and_loses_nothing(
    front: Front, aof_server: RedisServer
) -> None:
    held = Held()

    async def main() -> None:
        async with opened(front, aof_server.url, namespace="wg") as store:
            ids = await append(store, "a", 3)
            held.hold_next(ids[0])
            group = await ready(store.consumer_group("g", start="beginning"))
            worker = group.worker(
                "w1",
                handler(front, held.handle),
                claim_idle=CLAIM_IDLE,
                block=BLOCK,
                reconnect_for=0.5,
            )
            running = asyncio.create_task(run(worker))
            try:
                await until(held.in_hand.is_set, 10)
                await asyncio.to_thread(aof_server.stop)
                started = time.monotonic()
                held.release.set()
                with pytest.raises(WorkerDisconnected) as info:
                    await asyncio.wait_for(running, 10)
                gave_up_after = time.monotonic() - started
            finally:
                await _ensure_up(aof_server)
                if not running.done():  # a stop() flag left set would end the rerun below
                    worker.stop()
                    await asyncio.wait([running], timeout=20)
            assert (info.value.group, info.value.consumer) == ("g", "w1")
            assert 0.5 <= gave_up_after < 5
            for _ in range(200):  # the server is loading its AOF for a moment
                try:
                    assert await ready(group.pending()) == 3  # all it had read: nothing lost
                    break
                except redis.ConnectionError:
                    await asyncio.sleep(0.05)
            stats = await run(worker, stop_when_idle=True)  # the same consumer takes them back
            assert stats.processed == 3
            assert sorted(held.applied) == sorted(ids)
            assert held.deliveries[ids[0]] == 2
            assert (await ready(group.lag()), await ready(group.pending())) == (0, 0)

    asyncio.run(main())
