"""Consumer groups: events handled and acknowledged per second, with 1 and 2 workers.

Baseline: raw redis-py consumers on the same partition log and server, reading with
XREADGROUP (same batch size) and acknowledging each entry with XACK after "handling" it,
the same at-least-once pattern without event decoding, resolution or dead-letter checks.
Handlers do nothing, so the figures are the library's own overhead. Workers are threads
(both sides), so two of them share one GIL.
"""

from __future__ import annotations

import functools
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import redis

from aggregates import DomainEvent
from benchmarks._harness import Comparison, print_report
from eventstore import EventStore, RecordedEvent

EVENTS = 10_000
PER_AGGREGATE = 100
BATCH = 10


class BenchGroupTicked(DomainEvent):
    n: int


def _fill(store: EventStore) -> None:
    for start in range(0, EVENTS, PER_AGGREGATE):
        events = [BenchGroupTicked(n=start + i) for i in range(PER_AGGREGATE)]
        store.append("BenchGroupClock", f"c{start}", events, 0)


def _in_threads(targets: list[Callable[[], object]]) -> float:
    """Seconds until every target has returned, all started together."""
    threads = [threading.Thread(target=target) for target in targets]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start


def _ours(store: EventStore, workers: int) -> float:
    group = store.consumer_group(f"ours-{uuid.uuid4().hex[:6]}")
    handled = [0]

    def handler(recorded: RecordedEvent) -> None:
        handled[0] += 1

    runners = [
        group.worker(f"w{i}", handler, batch_size=BATCH, block=timedelta(milliseconds=20))
        for i in range(workers)
    ]
    seconds = _in_threads([functools.partial(w.run, stop_when_idle=True) for w in runners])
    assert handled[0] == EVENTS, "not every event was handled"
    assert group.pending() == 0, "events left unacknowledged"
    group.client.close()
    return EVENTS / seconds


def _raw(client: redis.Redis, log: str, workers: int) -> float:
    group = f"raw-{uuid.uuid4().hex[:6]}"
    client.xgroup_create(log, group, id="0")
    handled = [0]

    def consume(consumer: str) -> None:
        while True:
            reply = client.xreadgroup(group, consumer, {log: ">"}, count=BATCH)
            if not reply:
                return
            for entry_id in _entry_ids(reply):
                handled[0] += 1
                client.xack(log, group, entry_id)

    seconds = _in_threads([functools.partial(consume, f"r{i}") for i in range(workers)])
    assert handled[0] == EVENTS, "raw consumers missed entries"
    return EVENTS / seconds


def _entry_ids(reply: Any) -> list[bytes]:
    """Entry ids of an XREADGROUP reply as redis-py parses it (RESP3 dict or RESP2 list)."""
    if isinstance(reply, dict):
        return [entry[0] for entries in reply.values() for entry in entries[0]]
    return [entry[0] for _stream, entries in reply for entry in entries]


def run(url: str) -> None:
    """Print events/s handled and acknowledged by 1 and 2 workers, ours vs raw."""
    store = EventStore.from_url(url, namespace=f"bench-groups-{uuid.uuid4().hex[:6]}")
    client = redis.Redis.from_url(url)
    try:
        _fill(store)
        log = store.keys.log(0)
        rows = [
            Comparison(
                f"{n} worker{'s' if n > 1 else ''}: handled + acked ({EVENTS} events)",
                _ours(store, n),
                _raw(client, log, n),
                "ev/s",
                f"raw XREADGROUP COUNT {BATCH} + XACK each, {n} thread(s)",
            )
            for n in (1, 2)
        ]
        print_report("consumer groups", rows)
    finally:
        client.close()
        store.close()
