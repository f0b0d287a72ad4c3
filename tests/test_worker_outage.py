"""A consumer group's worker through a server outage (AOF on, fsync always).

The worker backs off and reconnects; the event in hand when the link dropped, whose XACK
failed, stays pending and is handled again; it gives up with ``WorkerDisconnected`` only
after ``reconnect_for`` seconds of one continuous outage.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import Counter
from datetime import timedelta
from typing import TypeVar

import pytest

from eventstore import EventStore, RecordedEvent, Worker, WorkerDisconnected, WorkerStats
from eventstore.testing import RedisServer
from tests.domain import Deposited
from tests.waiting import retrying, wait_for

T = TypeVar("T")
CLAIM_IDLE = timedelta(seconds=2)
BLOCK = timedelta(milliseconds=100)


def _append(store: EventStore, prefix: str, count: int) -> list[str]:
    """One Deposited event per aggregate ``<prefix><i>``; returns the event ids."""
    ids = [f"{prefix}{i}-event" for i in range(count)]
    for i, event_id in enumerate(ids):
        append = functools.partial(
            store.append, "Account", f"{prefix}{i}", [Deposited(amount=1)], 0, event_ids=[event_id]
        )
        retrying(append)
    return ids


class Handler:
    """Counts deliveries; applies each event once (idempotent by event id).

    ``hold`` names an event whose handler call waits for ``release`` (after signalling
    ``in_hand``): the test takes the server down while that event is in hand.
    """

    def __init__(self) -> None:
        self.deliveries: Counter[str] = Counter()
        self.applied: list[str] = []
        self.hold: str | None = None
        self.in_hand = threading.Event()
        self.release = threading.Event()

    def __call__(self, record: RecordedEvent) -> None:
        self.deliveries[record.event_id] += 1
        if record.event_id == self.hold:
            self.hold = None
            self.in_hand.set()
            assert self.release.wait(20), "the test never released the event in hand"
            self.release.clear()
        if record.event_id not in self.applied:
            self.applied.append(record.event_id)

    def hold_next(self, event_id: str) -> None:
        self.in_hand.clear()
        self.hold = event_id


class Running:
    """``worker.run`` in a thread, keeping what it returned or raised."""

    def __init__(self, worker: Worker, *, stop_when_idle: bool) -> None:
        self.stats: WorkerStats | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(worker, stop_when_idle))
        self.thread.start()

    def _run(self, worker: Worker, stop_when_idle: bool) -> None:
        try:
            self.stats = worker.run(stop_when_idle=stop_when_idle)
        except BaseException as exc:
            self.error = exc

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the worker did not return"


def _applied(handler: Handler, ids: list[str]) -> bool:
    return set(ids) <= set(handler.applied)


def _ensure_up(server: RedisServer) -> None:
    if server.process is None:
        server.start()


@pytest.mark.slow
def test_events_before_during_and_after_an_outage_are_all_handled(
    aof_server: RedisServer,
) -> None:
    store = EventStore.from_url(aof_server.url, namespace="wo", partitions=2)
    handler = Handler()
    group = store.consumer_group("g", start="beginning")
    worker = group.worker("w1", handler, claim_idle=CLAIM_IDLE, block=BLOCK, reconnect_for=30)
    before = _append(store, "before", 6)
    handler.hold_next(before[2])
    running = Running(worker, stop_when_idle=True)
    try:
        assert handler.in_hand.wait(10)
        aof_server.stop()
        handler.hold_next(before[2])  # its redelivery is held too: the worker stays busy
        handler.release.set()  # the handler returns; its XACK meets a dead link
        time.sleep(0.5)  # several failed reconnection attempts
        assert running.thread.is_alive()
        assert running.error is None
        aof_server.start()
        during = _append(store, "during", 4)  # may land before the worker reconnects
        # the unacknowledged event came back: the worker reconnected and drained it
        assert handler.in_hand.wait(10)
        after = _append(store, "after", 4)
        handler.release.set()
        running.join(20)
    finally:
        _ensure_up(aof_server)
        handler.release.set()
        worker.stop()
        running.thread.join(20)
        store.close()

    assert running.error is None
    everything = before + during + after
    assert sorted(handler.applied) == sorted(everything)  # exactly once when idempotent
    assert len(handler.applied) == len(everything)
    assert set(handler.deliveries) == set(everything)  # at least once each
    assert handler.deliveries[before[2]] == 2  # not acknowledged blindly: delivered again
    with EventStore.from_url(aof_server.url, namespace="wo") as reopened:
        group = reopened.consumer_group("g")
        assert (group.lag(), group.pending(), group.dead_letters()) == (0, 0, [])


@pytest.mark.slow
def test_gives_up_after_reconnect_for_and_loses_nothing(aof_server: RedisServer) -> None:
    store = EventStore.from_url(aof_server.url, namespace="wg")
    handler = Handler()
    ids = _append(store, "a", 3)
    handler.hold_next(ids[0])
    group = store.consumer_group("g", start="beginning")
    worker = group.worker("w1", handler, claim_idle=CLAIM_IDLE, block=BLOCK, reconnect_for=0.5)
    running = Running(worker, stop_when_idle=False)
    try:
        assert handler.in_hand.wait(10)
        aof_server.stop()
        started = time.monotonic()
        handler.release.set()
        running.join(10)
        gave_up_after = time.monotonic() - started
    finally:
        _ensure_up(aof_server)
        if running.thread.is_alive():  # a stop() flag left set would end the rerun below
            worker.stop()
            running.thread.join(20)

    assert isinstance(running.error, WorkerDisconnected)
    assert (running.error.group, running.error.consumer) == ("g", "w1")
    assert "'w1'" in str(running.error)
    assert "'g'" in str(running.error)
    assert 0.5 <= gave_up_after < 5
    try:
        assert retrying(group.pending) == 3  # all it had read stays pending: nothing lost
        stats = worker.run(stop_when_idle=True)  # the same consumer takes them back
        assert stats.processed == 3
        assert sorted(handler.applied) == sorted(ids)
        assert handler.deliveries[ids[0]] == 2
        assert (group.lag(), group.pending()) == (0, 0)
    finally:
        store.close()


@pytest.mark.slow
def test_reconnect_for_bounds_each_outage_not_their_sum(aof_server: RedisServer) -> None:
    store = EventStore.from_url(aof_server.url, namespace="wr")
    handler = Handler()
    group = store.consumer_group("g", start="beginning")
    worker = group.worker("w1", handler, claim_idle=CLAIM_IDLE, block=BLOCK, reconnect_for=2.0)
    running = Running(worker, stop_when_idle=False)
    try:
        for outage in range(4):  # 4 x 0.6 s down: more than reconnect_for in all
            ids = _append(store, f"o{outage}-", 2)
            wait_for(functools.partial(_applied, handler, ids))  # a read succeeded
            aof_server.stop()
            time.sleep(0.6)
            assert running.thread.is_alive()
            assert running.error is None
            aof_server.start()
        last = _append(store, "last", 2)
        wait_for(lambda: set(last) <= set(handler.applied))
    finally:
        _ensure_up(aof_server)
        worker.stop()
        running.join(10)
        store.close()
    assert running.error is None


@pytest.mark.slow
def test_stop_interrupts_the_backoff_promptly(aof_server: RedisServer) -> None:
    store = EventStore.from_url(aof_server.url, namespace="ws")
    worker = store.consumer_group("g").worker("w1", print, block=BLOCK, reconnect_for=60)
    running = Running(worker, stop_when_idle=False)
    try:
        time.sleep(0.3)  # blocked reading
        aof_server.stop()
        time.sleep(1.5)  # backing off by now, at the capped delay
        started = time.monotonic()
        worker.stop()
        running.join(5)
        assert time.monotonic() - started < 0.5
    finally:
        _ensure_up(aof_server)
        worker.stop()
        running.thread.join(5)
        store.close()
    assert running.error is None
    assert running.stats is not None
