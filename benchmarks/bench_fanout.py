"""Workload 12: many live feeds in one process, sharing the store's one Pub/Sub connection.

10,000 ``AsyncLiveFeed``s (the full size) in one event loop, each following its own
aggregate (``store.live(type, aggregate_ids=id)``), each read by a task of its own. A
sender appends one event every millisecond (paced to a schedule, never waiting for the
feeds), round robin over the aggregates, for a few seconds; each latency is the clock of
the feed's task when the notification reaches it, minus the sender's clock just before
its append. Also counted: the Redis connections the store holds meanwhile (CLIENT LIST on
the server, against a count taken before the store was opened; the store has appended
once before the feeds open, as an application has, which loads the append script).

The ceiling is the least any client does for the same fan-out: raw redis.asyncio, one
PubSub on one channel, one reader task parsing each message's JSON and putting it in the
``asyncio.Queue`` of the one consumer task (of as many) it is for, by a dict lookup; the
sender PUBLISHes instead of appending.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable

import redis
import redis.asyncio as aioredis

from benchmarks._context import Bench, Run
from benchmarks._domain import AGGREGATE_TYPE, BenchDeposited
from benchmarks._measure import Figures, percentile, take_turns
from benchmarks._results import Row
from eventstore import AsyncEventStore, AsyncLiveFeed

__all__ = ["run"]

Send = Callable[[int], Awaitable[object]]
"""Send event ``k`` of the run (its aggregate is ``k`` modulo the number of feeds)."""


def _connections(url: str) -> int:
    """Clients connected to the server, not counting the one asking."""
    with redis.Redis.from_url(url) as admin:
        return sum(1 for client in admin.client_list() if client["cmd"] != "client|list")


async def _paced(send: Send, count: int, per_second: int) -> list[float]:
    """``send(k)`` on a fixed schedule; the clock of each call, taken just before it."""
    sent = [0.0] * count
    begin = time.perf_counter()
    for k in range(count):
        wait = begin + k / per_second - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        sent[k] = time.perf_counter()
        await send(k)
    return sent


def _figures(sent: list[float], arrived: list[float], connections: int) -> Figures:
    latencies = [(a - s) * 1e3 for s, a in zip(sent, arrived, strict=True)]
    achieved = (len(sent) - 1) / (sent[-1] - sent[0]) if len(sent) > 1 else 0.0
    return {
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "rate": achieved,
        "connections": float(connections),
    }


class _Arrivals:
    """When each event reached its feed; done once all have."""

    def __init__(self, count: int) -> None:
        self.times = [0.0] * count
        self.left = count
        self.done = asyncio.Event()

    def mark(self, k: int) -> None:
        self.times[k] = time.perf_counter()
        self.left -= 1
        if self.left == 0:
            self.done.set()

    async def wait(self, timeout: float = 30) -> None:
        try:
            await asyncio.wait_for(self.done.wait(), timeout)
        except TimeoutError:
            raise RuntimeError(f"{self.left} events never reached their feed") from None


async def _ours(url: str, namespace: str, feeds: int, count: int, per_second: int) -> Figures:
    before = _connections(url)
    async with await AsyncEventStore.from_url(url, namespace=namespace) as store:
        ids = [f"{uuid.uuid4().hex[:8]}-{i}" for i in range(feeds)]
        versions = dict.fromkeys(ids, 0)
        which: dict[tuple[str, int], int] = {}  # (aggregate id, version) -> event k
        arrivals = _Arrivals(count)

        async def follow(feed: AsyncLiveFeed) -> None:
            async for note in feed:
                arrivals.mark(which[note.aggregate_id, note.version])

        async def send(k: int) -> None:
            aggregate_id = ids[k % feeds]
            versions[aggregate_id] += 1
            which[aggregate_id, versions[aggregate_id]] = k
            await store.append(AGGREGATE_TYPE, aggregate_id, [BenchDeposited(amount=k + 1)])

        await store.append(AGGREGATE_TYPE, f"warm-{ids[0]}", [BenchDeposited(amount=1)])
        live = [store.live(AGGREGATE_TYPE, aggregate_ids=i) for i in ids]
        async with contextlib.AsyncExitStack() as stack:
            await asyncio.gather(*(stack.enter_async_context(feed) for feed in live))
            readers = [asyncio.create_task(follow(feed)) for feed in live]
            sent = await _paced(send, count, per_second)
            await arrivals.wait()
            connections = _connections(url) - before
            for feed in live:
                feed.stop()
            await asyncio.gather(*readers)
    return _figures(sent, arrivals.times, connections)


async def _ceiling(url: str, feeds: int, count: int, per_second: int) -> Figures:
    before = _connections(url)
    channel = f"benchraw:fanout:{uuid.uuid4().hex[:8]}"
    client = aioredis.Redis.from_url(url)
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe(channel)
        await pubsub.get_message(timeout=5)  # the confirmation
        queues = {str(i): asyncio.Queue[int]() for i in range(feeds)}
        arrivals = _Arrivals(count)

        async def read() -> None:
            while True:
                message = await pubsub.get_message(timeout=1)
                if message is not None and message["type"] == "message":
                    data = json.loads(message["data"])
                    queues[data["id"]].put_nowait(data["k"])

        async def follow(queue: asyncio.Queue[int]) -> None:
            while True:
                arrivals.mark(await queue.get())

        async def send(k: int) -> None:
            await client.publish(channel, json.dumps({"id": str(k % feeds), "k": k}))

        tasks = [asyncio.create_task(follow(q)) for q in queues.values()]
        tasks.append(asyncio.create_task(read()))
        sent = await _paced(send, count, per_second)
        await arrivals.wait()
        connections = _connections(url) - before
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
        await client.aclose()
    return _figures(sent, arrivals.times, connections)


def run(bench: Bench) -> list[Row]:
    """Ours and the raw ceiling, taking turns."""
    sizes = bench.sizes
    feeds, per_second = sizes.fanout_feeds, sizes.live_rate
    count = max(2, round(sizes.fanout_seconds * per_second))
    url = bench.servers.recommended
    runs: dict[str, Run] = {
        "ours": lambda: asyncio.run(_ours(url, bench.namespace(url), feeds, count, per_second)),
        "ceiling": lambda: asyncio.run(_ceiling(url, feeds, count, per_second)),
    }
    stats = take_turns(sizes.runs, runs)
    note = bench.note("fanout_feeds", "fanout_seconds")
    measure = f"{feeds:,} async feeds, one aggregate each, {count:,} events at {per_second:,}/s"
    ceiling = "raw redis.asyncio: 1 PubSub, dict -> asyncio.Queue per consumer"
    rows = [
        Row(
            f"w12.fanout.{q}",
            12,
            f"append -> feed, {measure}: {q}",
            "ms",
            stats["ours"][q],
            ours_name="store.live(type, aggregate_ids=id) per feed",
            note=note,
        )
        for q in ("p50", "p99")
    ]
    rows += [
        Row(
            f"w12.ceiling.{q}",
            12,
            f"PUBLISH -> consumer task, {measure}: {q}",
            "ms",
            stats["ceiling"][q],
            ours_name=ceiling,
            note=note,
        )
        for q in ("p50", "p99")
    ]
    rows.append(
        Row(
            "w12.fanout.connections",
            12,
            f"Redis connections the store holds, {feeds:,} feeds open (one server)",
            "connections",
            stats["ours"]["connections"],
            "raw ceiling (1 PubSub + 1 client)",
            stats["ceiling"]["connections"],
            ours_name="ours",
            note=note,
        )
    )
    rows.append(
        Row(
            "w12.fanout.rate",
            12,
            "events/s the sender achieved",
            "ev/s",
            stats["ours"]["rate"],
            "raw sender",
            stats["ceiling"]["rate"],
            ours_name="ours",
            note=note,
        )
    )
    return rows
