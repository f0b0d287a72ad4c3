"""Workload 11: the asyncio front, ``AsyncEventStore``, next to raw redis.asyncio and the
sync store.

1. One event per append, each task appending to an aggregate of its own with the exact
   expected version, from 1, 16, 64 and 256 concurrent tasks (events/s; and the p50/p99
   of one append with one task): ``AsyncEventStore.append`` (concurrent calls share
   writes on one connection, see ``eventstore._async.mux``) next to raw redis.asyncio
   doing one ``await client.evalsha(...)`` of workload 1's minimal append script per
   append at the same concurrency, on a pool of its own; and next to the sync
   ``EventStore.append`` from 1 and 16 threads. The ceiling, against the same raw
   baseline, is what N concurrent appends become at best on one connection: one write of
   N EVALSHAs of the minimal script and one read of their replies, no framework; against
   the sync store, the same ceiling at 64.
2. ``read_all`` catch-up (typed events/s) over the same events, async next to sync. The
   ceiling, against the same sync baseline, is workload 7's typed ceiling on
   redis.asyncio.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from benchmarks._aioraw import Append, HeldConnection, NaiveAppends, typed_catch_up
from benchmarks._concurrency import TURN, EventLoop, in_tasks, in_threads, taking_turns
from benchmarks._context import Bench, Run
from benchmarks._domain import AGGREGATE_TYPE, BenchDeposited
from benchmarks._measure import Figures, Stat, rate, take_turns
from benchmarks._results import Row
from benchmarks._typed_pages import TypedPages
from benchmarks.bench_catchup import PAGE, fill
from eventstore import AsyncEventStore, EventStore

__all__ = ["run"]

TASKS = (1, 16, 64, 256)
THREADS = (1, 16)
SYNC_PAIRS = ((1, 1), (16, 16), (64, 16))  # (tasks, threads) compared


def _ours(store: AsyncEventStore) -> Callable[[], Append]:
    event = BenchDeposited(amount=1)

    def append_to() -> Append:
        aggregate_id = str(uuid.uuid4())

        async def append(version: int) -> object:
            return await store.append(AGGREGATE_TYPE, aggregate_id, [event], version)

        return append

    return append_to


async def _client(url: str) -> aioredis.Redis:
    return aioredis.Redis.from_url(url, socket_timeout=60)


def _append_runs(bench: Bench, loop: EventLoop) -> dict[str, Run]:
    url, appends = bench.servers.recommended, bench.sizes.async_appends
    store = loop.opened(
        AsyncEventStore.from_url(url, namespace=bench.namespace(), socket_timeout=60),
        AsyncEventStore.aclose,
    )
    held = loop.opened(HeldConnection(url, bench.raw_key).open(), HeldConnection.aclose)
    naive = {
        tasks: loop.opened(NaiveAppends(url, bench.raw_key, tasks).open(), NaiveAppends.aclose)
        for tasks in TASKS
    }

    async def one_task() -> Figures:
        appenders = {
            "ours": _ours(store)(),
            "raw": naive[1].append_to(),
            "ceiling": held.append_to(),
        }
        return await taking_turns(bench.sizes.latency_samples, appenders)

    runs: dict[str, Run] = {"latency": loop.later(one_task)}
    for tasks in TASKS:
        runs[f"ours.{tasks}"] = loop.later(in_tasks, tasks, appends, _ours(store))
        runs[f"raw.{tasks}"] = loop.later(in_tasks, tasks, appends, naive[tasks].append_to)
        runs[f"ceiling.{tasks}"] = loop.later(held.rounds, tasks, max(1, appends // tasks))
    sync_store = bench.store()
    for threads in THREADS:
        runs[f"sync.{threads}"] = functools.partial(in_threads, sync_store, threads, appends)
    return runs


def _count(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


CEILING_1 = (
    "ceiling: one raw EVALSHA of the minimal append script written and its reply read on "
    "a held connection, no framework"
)
CEILING_N = (
    "ceiling: {n} raw EVALSHAs of the minimal append script written at once on one "
    "connection, then their replies read, no framework"
)
NAIVE = "raw redis.asyncio: await client.evalsha(...) of the minimal append script, {n}"
OURS = "AsyncEventStore.append"


def _latency_rows(bench: Bench, stats: dict[str, Stat]) -> list[Row]:
    note, rows = bench.note("latency_samples"), []
    for q in ("p50", "p99"):
        measure = f"append 1 event, expected version, 1 task, turns of {TURN}: {q}"
        naive = NAIVE.format(n="1 task")
        for key, name, ours in (
            (f"w11.append.1.{q}", OURS, stats[f"ours.{q}"]),
            (f"w11.ceiling.1.{q}", CEILING_1, stats[f"ceiling.{q}"]),
        ):
            rows.append(Row(key, 11, measure, "us", ours, naive, stats[f"raw.{q}"], name, note))
    return rows


def _append_rows(bench: Bench, stats: dict[str, dict[str, Stat]]) -> list[Row]:
    rows = _latency_rows(bench, stats["latency"])
    note = bench.note("async_appends")
    for tasks in TASKS:
        measure = f"appends to distinct aggregates, {_count(tasks, 'concurrent task')}"
        naive = (NAIVE.format(n=_count(tasks, "task")), stats[f"raw.{tasks}"]["rate"])
        ceiling = CEILING_1 if tasks == 1 else CEILING_N.format(n=tasks)
        for key, name, ours in (
            (f"w11.append.{tasks}", OURS, stats[f"ours.{tasks}"]["rate"]),
            (f"w11.ceiling.{tasks}", ceiling, stats[f"ceiling.{tasks}"]["rate"]),
        ):
            rows.append(Row(key, 11, measure, "ev/s", ours, *naive, name, note))
    compared = [
        (f"w11.sync.{tasks}", tasks, threads, f"{OURS}, {_count(tasks, 'task')}", f"ours.{tasks}")
        for tasks, threads in SYNC_PAIRS
    ]
    compared.append(("w11.ceiling.sync", 64, 16, CEILING_N.format(n=64), "ceiling.64"))
    for key, tasks, threads, name, source in compared:
        measure = (
            f"appends to distinct aggregates: {_count(tasks, 'task')} against "
            f"{_count(threads, 'thread')}"
        )
        sync = (f"EventStore.append, {_count(threads, 'thread')}", stats[f"sync.{threads}"]["rate"])
        rows.append(Row(key, 11, measure, "ev/s", stats[source]["rate"], *sync, name, note))
    return rows


async def _timed(work: Awaitable[object]) -> float:
    start = time.perf_counter()
    await work
    return time.perf_counter() - start


async def _async_read_all(store: AsyncEventStore, total: int) -> Figures:
    async def read_all() -> None:
        seen = 0
        async for _ in store.read_all(page_size=PAGE):
            seen += 1
        if seen != total:
            raise RuntimeError(f"AsyncEventStore.read_all returned {seen} of {total} events")

    return {"rate": total / await _timed(read_all())}


def _sync_read_all(store: EventStore, total: int) -> None:
    seen = sum(1 for _ in store.read_all(page_size=PAGE))
    if seen != total:
        raise RuntimeError(f"EventStore.read_all returned {seen} of {total} events")


async def _async_ceiling(client: aioredis.Redis, pages: TypedPages, total: int) -> Figures:
    return {"rate": total / await _timed(typed_catch_up(client, pages, total))}


def _catch_up_runs(bench: Bench, loop: EventLoop, total: int) -> dict[str, Run]:
    per = bench.sizes.events_per_aggregate
    store = bench.store()
    fill(store, total // per, per)
    url = bench.servers.recommended
    ours = loop.opened(
        AsyncEventStore.from_url(url, namespace=store.namespace, socket_timeout=60),
        AsyncEventStore.aclose,
    )
    # the stream key of a pointer's <type>:<id> in partition 0, from the key schema
    prefix = store.keys.stream(AGGREGATE_TYPE, "").removesuffix(f"{AGGREGATE_TYPE}:")
    pages = TypedPages(store.keys.log(0), prefix, PAGE)
    raw = loop.opened(_client(url), aioredis.Redis.aclose)
    return {
        "sync": lambda: {"rate": rate(total, lambda: _sync_read_all(store, total))},
        "async": loop.later(_async_read_all, ours, total),
        "ceiling": loop.later(_async_ceiling, raw, pages, total),
    }


def _catch_up_rows(bench: Bench, stats: dict[str, dict[str, Stat]], total: int) -> list[Row]:
    per = bench.sizes.events_per_aggregate
    measure = f"read_all over {total:,} events ({total // per:,} aggregates x {per})"
    note, sync = bench.note("catch_up_events"), stats["sync"]["rate"]
    baseline = "EventStore.read_all (typed events), the same events"
    ceiling = (
        "ceiling: workload 7's typed ceiling on redis.asyncio (raw XRANGE pages of 1000 of "
        "our log + one XREAD of the page's events + pydantic validation, next page read "
        "ahead), no framework"
    )
    return [
        Row(
            "w11.read_all",
            11,
            measure,
            "ev/s",
            stats["async"]["rate"],
            baseline,
            sync,
            "AsyncEventStore.read_all (typed events)",
            note,
        ),
        Row(
            "w11.read_all.ceiling",
            11,
            measure,
            "ev/s",
            stats["ceiling"]["rate"],
            baseline,
            sync,
            ceiling,
            note,
        ),
    ]


def run(bench: Bench) -> list[Row]:
    """Appends from tasks and threads, then read_all over a namespace filled for it."""
    total = bench.sizes.catch_up_events // bench.sizes.events_per_aggregate
    total *= bench.sizes.events_per_aggregate
    with EventLoop() as loop:
        appends = take_turns(bench.sizes.runs, _append_runs(bench, loop))
        catch_up = take_turns(bench.sizes.runs, _catch_up_runs(bench, loop, total))
    return _append_rows(bench, appends) + _catch_up_rows(bench, catch_up, total)
