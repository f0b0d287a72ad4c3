"""Running appends concurrently and timing them: tasks on one event loop, or threads.

``in_tasks`` and ``in_threads`` spread a number of appends over concurrent appenders, each
on an aggregate of its own, and time them from when all have warmed up; ``taking_turns``
times single appenders in turns. ``EventLoop`` keeps one loop for a whole workload.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Self, TypeVar

from benchmarks._aioraw import WARMUP, Append, figures
from benchmarks._context import Run
from benchmarks._domain import AGGREGATE_TYPE, BenchDeposited
from benchmarks._measure import Figures, percentile
from eventstore import EventStore

__all__ = ["TURN", "EventLoop", "in_tasks", "in_threads", "taking_turns"]

TURN = 50  # appends each single appender makes before the next one's turn
T = TypeVar("T")


async def in_tasks(tasks: int, appends: int, append_to: Callable[[], Append]) -> Figures:
    """``appends`` spread over ``tasks`` concurrent tasks, each on an aggregate of its own."""
    per = max(1, appends // tasks)
    appenders = [append_to() for _ in range(tasks)]
    latencies: list[float] = []

    async def appending(append: Append, versions: range, timed: bool) -> None:
        for version in versions:
            began = time.perf_counter()
            await append(version)
            if timed:
                latencies.append(time.perf_counter() - began)

    await asyncio.gather(*(appending(a, range(WARMUP), False) for a in appenders))
    start = time.perf_counter()
    await asyncio.gather(*(appending(a, range(WARMUP, WARMUP + per), True) for a in appenders))
    return figures(per * tasks, time.perf_counter() - start, latencies)


async def taking_turns(samples: int, appenders: dict[str, Append]) -> Figures:
    """The p50/p99 of one append (us) for each of ``appenders``, one task each, taking
    turns every ``TURN`` appends: a busy moment of the shared machine lands on all of them
    alike (figures ``"<name>.p50"``, ``"<name>.p99"``)."""
    latencies: dict[str, list[float]] = {name: [] for name in appenders}
    for append in appenders.values():
        for version in range(WARMUP):
            await append(version)
    for first in range(WARMUP, WARMUP + samples, TURN):
        versions = range(first, min(first + TURN, WARMUP + samples))
        for name, append in appenders.items():
            for version in versions:
                began = time.perf_counter()
                await append(version)
                latencies[name].append(time.perf_counter() - began)
    return {
        f"{name}.{q}": percentile(times, int(q[1:])) * 1e6
        for name, times in latencies.items()
        for q in ("p50", "p99")
    }


def in_threads(store: EventStore, threads: int, appends: int) -> Figures:
    """``appends`` spread over ``threads`` threads calling ``store.append``, each on an
    aggregate of its own; timed from when every thread has warmed up."""
    per = max(1, appends // threads)
    ready = threading.Barrier(threads + 1, timeout=120)
    event = BenchDeposited(amount=1)
    latencies: list[float] = []

    def appending() -> None:
        aggregate_id = str(uuid.uuid4())
        try:
            for version in range(WARMUP):
                store.append(AGGREGATE_TYPE, aggregate_id, [event], expected_version=version)
            ready.wait()
        except BaseException:
            ready.abort()  # neither the other threads nor the clock wait for this one
            raise
        for version in range(WARMUP, WARMUP + per):
            began = time.perf_counter()
            store.append(AGGREGATE_TYPE, aggregate_id, [event], expected_version=version)
            latencies.append(time.perf_counter() - began)

    with ThreadPoolExecutor(threads) as pool:
        done = [pool.submit(appending) for _ in range(threads)]
        try:
            ready.wait()
        except threading.BrokenBarrierError:
            for future in done:
                future.result()  # the thread's own error
            raise
        start = time.perf_counter()
        for future in done:
            future.result()
    return figures(per * threads, time.perf_counter() - start, latencies)


class EventLoop:
    """One event loop for the whole workload: what is opened in it stays usable from run
    to run (each run is one ``run()``), and is closed in it at the end."""

    def __init__(self) -> None:
        self._runner = asyncio.Runner()
        self._closing: list[Callable[[], Awaitable[object]]] = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            for close in reversed(self._closing):
                self.run(close())
        finally:
            self._runner.close()

    def run(self, work: Awaitable[T]) -> T:
        """Run ``work`` to its end on the loop."""
        return self._runner.run(work)  # type: ignore[arg-type]

    def opened(self, work: Awaitable[T], close: Callable[[T], Awaitable[object]]) -> T:
        """``work``'s result, given to ``close`` when the loop closes."""
        value = self.run(work)
        self._closing.append(functools.partial(close, value))
        return value

    def later(self, work: Callable[..., Awaitable[Figures]], *args: Any) -> Run:
        """A run of ``work(*args)`` on the loop."""
        return lambda: self.run(work(*args))
