"""Reading: catch-up throughput and live delivery latency, next to raw redis-py.

- catch-up: ``read_all``, a ``subscribe`` iteration and a ``Projection`` (one HINCRBY per
  event, committed with the checkpoint per page) over one partition log, in typed events
  per second, vs raw XRANGE pages of 1000 over the same log (entries/s, nothing decoded);
- live: append-to-handler latency (p50/p99) of a subscription blocked in XREAD, vs raw
  XADD -> XREAD BLOCK on a plain stream; and append-to-notification of the live feed vs
  raw PUBLISH -> SUBSCRIBE. One event at a time, the next sent once the last arrived.

Run with ``python -m benchmarks --only subscriptions``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import cast

import redis

from aggregates import DomainEvent
from benchmarks._harness import Comparison, percentile, print_report, rate
from eventstore import FROM_NOW, EventStore, Projection, ProjectionContext
from eventstore._core.records import Entries

__all__ = ["run"]

AGGREGATES = 200
EVENTS_PER_AGGREGATE = 100
LIVE_ROUNDS = 1000
PAGE = 1000


class SubBenchDeposited(DomainEvent):
    """A small payload, like most domain events."""

    amount: int
    note: str = "benchmark"


def _fill(store: EventStore) -> int:
    for i in range(AGGREGATES):
        events = [SubBenchDeposited(amount=n) for n in range(EVENTS_PER_AGGREGATE)]
        store.append("BenchAccount", f"acc-{i}", events, 0)
    return AGGREGATES * EVENTS_PER_AGGREGATE


def _raw_xrange(client: redis.Redis, key: str) -> int:
    count, low = 0, "-"
    while True:
        entries = cast(Entries, client.xrange(key, low, "+", count=PAGE))
        if not entries:
            return count
        count += len(entries)
        low = f"({entries[-1][0].decode()}"


def _catch_up(store: EventStore, client: redis.Redis) -> list[Comparison]:
    total = _fill(store)
    log = store.keys.log(0)
    raw = rate(total, lambda: _raw_xrange(client, log))

    def subscription() -> None:
        with store.subscribe(page_size=PAGE) as sub:
            for seen, _recorded in enumerate(sub, start=1):
                if seen == total:
                    break

    def projection() -> None:
        totals = Projection(store, f"bench-{uuid.uuid4().hex[:6]}", page_size=PAGE)

        @totals.on(SubBenchDeposited)
        def _deposited(event: SubBenchDeposited, ctx: ProjectionContext) -> None:
            ctx.pipe.hincrby(ctx.key("balance"), ctx.record.aggregate_id, event.amount)

        totals.run(until_caught_up=True)

    baseline = "raw XRANGE of the log"
    return [
        Comparison(
            "catch-up read_all",
            rate(total, lambda: sum(1 for _ in store.read_all())),
            raw,
            "ev/s",
            baseline,
        ),
        Comparison("catch-up subscribe", rate(total, subscription), raw, "ev/s", baseline),
        Comparison("catch-up projection (HINCRBY)", rate(total, projection), raw, "ev/s", baseline),
    ]


def _ping_pong(
    send: Callable[[int], None],
    wait_started: threading.Event,
    consumer: Callable[[Callable[[], None]], None],
) -> list[float]:
    """Send one message, wait until the consumer thread saw it, LIVE_ROUNDS times."""
    arrived = threading.Event()
    latencies: list[float] = []
    thread = threading.Thread(target=consumer, args=(arrived.set,), daemon=True)
    thread.start()
    wait_started.wait(10)
    for i in range(LIVE_ROUNDS):
        arrived.clear()
        start = time.perf_counter()
        send(i)
        if not arrived.wait(10):
            raise RuntimeError(f"round {i}: nothing arrived")
        latencies.append(time.perf_counter() - start)
    thread.join(10)
    return latencies


def _live_subscription(store: EventStore) -> list[float]:
    sub = store.subscribe(after=FROM_NOW, block_ms=1000)
    started = threading.Event()

    def consume(arrived: Callable[[], None]) -> None:
        started.set()
        for seen, _recorded in enumerate(sub, start=1):
            arrived()
            if seen == LIVE_ROUNDS:
                return

    def send(i: int) -> None:
        store.append("BenchAccount", "live", [SubBenchDeposited(amount=i)])

    try:
        return _ping_pong(send, started, consume)
    finally:
        sub.close()


def _raw_xread(client: redis.Redis, listener: redis.Redis) -> list[float]:
    key = f"bench-raw-{uuid.uuid4().hex[:6]}"
    started = threading.Event()

    def consume(arrived: Callable[[], None]) -> None:
        last, seen = "0-0", 0
        started.set()
        while seen < LIVE_ROUNDS:
            reply = cast(list[tuple[bytes, Entries]], listener.xread({key: last}, block=1000))
            for _key, entries in reply or []:
                for entry_id, _fields in entries:
                    last, seen = entry_id.decode(), seen + 1
                    arrived()

    def send(i: int) -> None:
        client.xadd(key, {"d": str(i)})

    return _ping_pong(send, started, consume)


def _live_feed(store: EventStore) -> list[float]:
    feed = store.live("BenchAccount", poll_seconds=1.0)
    started = threading.Event()

    def consume(arrived: Callable[[], None]) -> None:
        started.set()
        for seen, _note in enumerate(feed, start=1):
            arrived()
            if seen == LIVE_ROUNDS:
                return

    def send(i: int) -> None:
        store.append("BenchAccount", "feed", [SubBenchDeposited(amount=i)])

    try:
        return _ping_pong(send, started, consume)
    finally:
        feed.close()


def _raw_pubsub(client: redis.Redis) -> list[float]:
    channel = f"bench-raw-{uuid.uuid4().hex[:6]}"
    pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    pubsub.subscribe(channel)
    pubsub.get_message(timeout=1.0)  # the confirmation
    started = threading.Event()

    def consume(arrived: Callable[[], None]) -> None:
        started.set()
        seen = 0
        while seen < LIVE_ROUNDS:
            if pubsub.get_message(timeout=1.0) is not None:
                seen += 1
                arrived()

    try:
        return _ping_pong(lambda i: _publish(client, channel, i), started, consume)
    finally:
        pubsub.close()


def _publish(client: redis.Redis, channel: str, i: int) -> None:
    client.publish(channel, str(i))


def _us(values: list[float], q: float) -> float:
    return percentile(values, q) * 1e6


def _latency_rows(
    name: str, ours: list[float], raw: list[float], raw_name: str
) -> list[Comparison]:
    return [
        Comparison(f"{name} p50", _us(ours, 50), _us(raw, 50), "us", f"{raw_name} p50"),
        Comparison(f"{name} p99", _us(ours, 99), _us(raw, 99), "us", f"{raw_name} p99"),
    ]


def run(url: str) -> None:
    """Fill a fresh namespace, then print catch-up and live figures next to raw redis-py."""
    client = redis.Redis.from_url(url, socket_timeout=30)
    listener = redis.Redis.from_url(url, socket_timeout=30)
    store = EventStore.from_url(url, namespace=f"bench-sub-{uuid.uuid4().hex[:6]}")
    try:
        rows = _catch_up(store, client)
        rows += _latency_rows(
            "append -> subscription handler",
            _live_subscription(store),
            _raw_xread(client, listener),
            "raw XADD -> XREAD BLOCK",
        )
        rows += _latency_rows(
            "append -> live feed notification",
            _live_feed(store),
            _raw_pubsub(client),
            "raw PUBLISH -> SUBSCRIBE",
        )
        print_report(
            f"subscriptions ({AGGREGATES * EVENTS_PER_AGGREGATE} events, 1 partition)", rows
        )
    finally:
        store.close()
        client.close()
        listener.close()
