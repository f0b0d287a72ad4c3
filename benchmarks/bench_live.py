"""Workload 8: live delivery latency, append to handler, at 1,000 events per second.

A sender appends one event every millisecond (paced to a schedule, never waiting for the
consumer) while a consumer thread in the same process handles them; each latency is the
handler's clock minus the sender's clock just before its append call. Ours: a catch-up
subscription opened ``FROM_NOW`` (blocked in XREAD on the partition log, then resolving
pointers). Baselines: raw XADD -> XREAD BLOCK on a plain stream, and eventsourcing's own
subscriptions (``recorder.subscribe``: a thread woken by the POPO recorder, or by
PostgreSQL LISTEN/NOTIFY; its SQLite recorder has none).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, cast

from benchmarks._context import Bench, Run
from benchmarks._domain import AGGREGATE_TYPE, BenchDeposited
from benchmarks._esbackends import sessions
from benchmarks._esdomain import Bank, new_es_account
from benchmarks._measure import Figures, percentile, take_turns
from benchmarks._results import Row
from eventstore import FROM_NOW, EventStore
from eventstore._core.records import Entries

__all__ = ["run"]

Mark = Callable[[int], None]
"""Called by a consumer with the index of each event it handled (-1: the warm-up)."""
Start = Callable[[Mark], Callable[[], None]]
"""Starts a consumer thread calling ``Mark``; returns the function that stops it."""

# amounts must be positive: event i carries amount i + OFFSET (the warm-up is -1)
OFFSET = 2


def _paced(send: Callable[[int], None], count: int, per_second: int) -> list[float]:
    """Call ``send(i)`` on a fixed schedule; the clock of each call, taken just before it."""
    sent = [0.0] * count
    begin = time.perf_counter()
    for i in range(count):
        wait = begin + i / per_second - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        sent[i] = time.perf_counter()
        send(i)
    return sent


def _measure(start: Start, send: Callable[[int], None], count: int, per_second: int) -> Figures:
    arrived: dict[int, float] = {}
    warm, done = threading.Event(), threading.Event()

    def mark(i: int) -> None:
        now = time.perf_counter()
        if i < 0:
            warm.set()
            return
        arrived[i] = now
        if len(arrived) == count:
            done.set()

    stop = start(mark)
    try:
        send(-1)
        if not warm.wait(10):
            raise RuntimeError("the warm-up event never reached the consumer")
        sent = _paced(send, count, per_second)
        if not done.wait(30):
            raise RuntimeError(f"{len(arrived)} of {count} events reached the consumer")
    finally:
        stop()
    latencies = [(arrived[i] - sent[i]) * 1e3 for i in range(count)]
    achieved = (count - 1) / (sent[-1] - sent[0]) if count > 1 else float(per_second)
    return {"p50": percentile(latencies, 50), "p99": percentile(latencies, 99), "rate": achieved}


def _in_thread(loop: Callable[[], None], stop: Callable[[], None]) -> Callable[[], None]:
    thread = threading.Thread(target=loop, daemon=True)
    thread.start()

    def stop_and_join() -> None:
        stop()
        thread.join(10)

    return stop_and_join


def _ours(store: EventStore, count: int, per_second: int) -> Run:
    aggregate_id = str(uuid.uuid4())

    def start(mark: Mark) -> Callable[[], None]:
        subscription = store.subscribe(after=FROM_NOW, block_ms=1000)

        def loop() -> None:
            with subscription:
                for recorded in subscription:
                    mark(cast(BenchDeposited, recorded.event).amount - OFFSET)

        return _in_thread(loop, subscription.stop)

    def send(i: int) -> None:
        store.append(AGGREGATE_TYPE, aggregate_id, [BenchDeposited(amount=i + OFFSET)])

    return lambda: _measure(start, send, count, per_second)


def _raw(bench: Bench, count: int, per_second: int) -> Run:
    client, listener = bench.client(), bench.client()

    def start(mark: Mark) -> Callable[[], None]:
        key, stopped = bench.raw_key("live"), threading.Event()
        send_to[0] = key

        def loop() -> None:
            last = "0-0"
            while not stopped.is_set():
                reply = cast(list[tuple[bytes, Entries]], listener.xread({key: last}, block=200))
                for _key, entries in reply or []:
                    for entry_id, fields in entries:
                        last = entry_id.decode()
                        mark(int(fields[b"i"]))

        return _in_thread(loop, stopped.set)

    send_to = [""]

    def send(i: int) -> None:
        client.xadd(send_to[0], {"t": "BenchDeposited", "i": str(i)})

    return lambda: _measure(start, send, count, per_second)


def _es(app: Bank, count: int, per_second: int) -> Run:
    account = new_es_account(1)
    app.save(account)

    def start(mark: Mark) -> Callable[[], None]:
        subscription = app.recorder.subscribe(gt=app.recorder.max_notification_id())

        def loop() -> None:
            with subscription:
                for notification in subscription:
                    event: Any = app.mapper.to_domain_event(notification)
                    mark(event.amount - OFFSET)

        return _in_thread(loop, subscription.stop)

    def send(i: int) -> None:
        account.deposit(i + OFFSET)
        app.save(account)

    return lambda: _measure(start, send, count, per_second)


def run(bench: Bench) -> list[Row]:
    """Ours, raw and eventsourcing (where it has subscriptions), taking turns."""
    count, per_second = bench.sizes.live_events, bench.sizes.live_rate
    runs: dict[str, Run] = {
        "raw": _raw(bench, count, per_second),
        "ours": _ours(bench.store(), count, per_second),
    }
    with sessions(bench.backends) as makers:
        for name, make in makers.items():
            if name != "sqlite":  # its recorder raises NotImplementedError on subscribe
                runs[name] = _es(make(Bank), count, per_second)
        stats = take_turns(bench.sizes.runs, runs)
    note = bench.note("live_events")
    measure = f"append -> handler, {count:,} events at {per_second:,}/s"
    rows = []
    for q in ("p50", "p99"):
        rows.append(
            Row(
                f"w8.live.{q}",
                8,
                f"{measure}: {q}",
                "ms",
                stats["ours"][q],
                "raw XADD -> XREAD BLOCK",
                stats["raw"][q],
                ours_name="store.subscribe(after=FROM_NOW)",
                note=note,
            )
        )
        theirs = {name: s[q] for name, s in stats.items() if name not in ("ours", "raw")}
        rows += bench.es_rows(
            f"w8.live.{q}",
            8,
            f"{measure}: {q}",
            "ms",
            stats["ours"][q],
            theirs,
            note=note,
            missing="eventsourcing's SQLite recorder has no subscriptions",
        )
    rows.append(
        Row(
            "w8.live.rate",
            8,
            "events/s the sender achieved",
            "ev/s",
            stats["ours"]["rate"],
            "raw sender",
            stats["raw"]["rate"],
            ours_name="ours",
            note=note,
        )
    )
    return rows
