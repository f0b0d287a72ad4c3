"""Workload 9: consumer groups, events handled and acknowledged per second, 1 and 2 workers.

Ours: ``store.consumer_group(...)`` workers (``batch_size=10``) over the partition log,
each event decoded, resolved to its typed event, handed to a handler that does nothing,
then acknowledged; dead-letter bookkeeping included. Baseline: raw redis-py consumers of
a group on the same log: XREADGROUP COUNT 10, "handle" each entry, one XACK per batch
(the cheapest correct at-least-once loop), nothing decoded. Workers are threads on both
sides, so two of them share one GIL. eventsourcing has no competing consumers: no row.
"""

from __future__ import annotations

import functools
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

import redis

from benchmarks._context import Bench, Run
from benchmarks._domain import AGGREGATE_TYPE, new_account
from benchmarks._measure import take_turns
from benchmarks._raw import entry_ids
from benchmarks._results import Row
from eventstore import EventStore, ExpectedVersion, RecordedEvent

__all__ = ["run"]

BATCH = 10


def _fill(store: EventStore, events: int, per: int) -> int:
    for _ in range(events // per):
        batch = list(new_account(per).pending_events)
        store.append(AGGREGATE_TYPE, str(uuid.uuid4()), batch, ExpectedVersion.NO_STREAM)
    return events // per * per


def _in_threads(targets: list[Callable[[], object]]) -> float:
    """Seconds until every target has returned, all started together."""
    threads = [threading.Thread(target=target) for target in targets]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start


def _ours(store: EventStore, total: int, workers: int) -> float:
    group = store.consumer_group(f"ours-{uuid.uuid4().hex[:6]}")
    handled = [0]
    lock = threading.Lock()

    def handler(recorded: RecordedEvent) -> None:
        with lock:
            handled[0] += 1

    runners = [
        group.worker(f"w{i}", handler, batch_size=BATCH, block=timedelta(milliseconds=20))
        for i in range(workers)
    ]
    seconds = _in_threads([functools.partial(w.run, stop_when_idle=True) for w in runners])
    if handled[0] != total or group.pending():
        raise RuntimeError(f"handled {handled[0]} of {total}, {group.pending()} left pending")
    return total / seconds


def _raw(client: redis.Redis, log: str, total: int, workers: int) -> float:
    group = f"raw-{uuid.uuid4().hex[:6]}"
    client.xgroup_create(log, group, id="0")
    handled = [0]
    lock = threading.Lock()

    def consume(consumer: str) -> None:
        while True:
            ids = entry_ids(client.xreadgroup(group, consumer, {log: ">"}, count=BATCH))
            if not ids:
                return
            for _entry_id in ids:
                with lock:
                    handled[0] += 1
            client.xack(log, group, *ids)

    seconds = _in_threads([functools.partial(consume, f"r{i}") for i in range(workers)])
    if handled[0] != total:
        raise RuntimeError(f"raw consumers handled {handled[0]} of {total}")
    return total / seconds


def run(bench: Bench) -> list[Row]:
    """1 and 2 workers, ours and raw taking turns, each run a new group over the same log."""
    store, client = bench.store(), bench.client()
    total = _fill(store, bench.sizes.group_events, bench.sizes.events_per_aggregate)
    log = store.keys.log(0)
    runs: dict[str, Run] = {}
    for n in (1, 2):
        runs[f"raw{n}"] = functools.partial(lambda n: {"rate": _raw(client, log, total, n)}, n)
        runs[f"ours{n}"] = functools.partial(lambda n: {"rate": _ours(store, total, n)}, n)
    stats = take_turns(bench.sizes.runs, runs)
    note = bench.note("group_events")
    return [
        Row(
            f"w9.group.{n}",
            9,
            f"{n} worker{'s' if n > 1 else ''}: {total:,} events handled + acked",
            "ev/s",
            stats[f"ours{n}"]["rate"],
            f"raw XREADGROUP COUNT {BATCH} + XACK per batch, {n} thread(s)",
            stats[f"raw{n}"]["rate"],
            ours_name="consumer group workers",
            note=note,
        )
        for n in (1, 2)
    ]
