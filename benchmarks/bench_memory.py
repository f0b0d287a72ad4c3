"""Workload 10: memory, in bytes per event, for 10,000 aggregates x 10 events.

Each aggregate is saved with ``snapshot_every=10``, so the figure covers all we keep:
its stream, its log pointers, its snapshot, and the position counter. Total bytes are the
server's ``used_memory`` before and after; the breakdown by kind is ``MEMORY USAGE``
(``SAMPLES 0``: exact) of every key. The baseline is the very same entries (every field
as our aggregate streams store them) appended to one plain stream, measured the same way.
Measured on the server with recommended settings and on the one with Redis's defaults
(``stream-node-max-bytes 4096``): one run each, as memory does not vary between runs.
"""

from __future__ import annotations

from typing import Any, cast

import redis

from benchmarks._context import Bench
from benchmarks._domain import AGGREGATE_TYPE, BenchAccount, new_account
from benchmarks._measure import Stat
from benchmarks._raw import copy_streams
from benchmarks._results import Row
from eventstore import Repository

__all__ = ["run"]


def _used(client: redis.Redis) -> int:
    info: dict[str, Any] = client.info("memory")
    return int(info["used_memory"])


def _usage(client: redis.Redis, keys: list[str]) -> int:
    total = 0
    for start in range(0, len(keys), 1000):
        with client.pipeline(transaction=False) as pipe:
            for key in keys[start : start + 1000]:
                pipe.memory_usage(key, samples=0)
            total += sum(int(cast(int, n) or 0) for n in pipe.execute())
    return total


def _measure(bench: Bench, url: str, label: str) -> list[Row]:
    aggregates, per = bench.sizes.memory_aggregates, bench.sizes.events_per_aggregate
    events = aggregates * per
    client, store = bench.client(url), bench.store(url)
    repository = Repository(store, BenchAccount, snapshot_every=per)
    before = _used(client)
    ids = []
    for _ in range(aggregates):
        account = new_account(per)
        repository.save(account)
        ids.append(account.id)
    ours = (_used(client) - before) / events
    streams = [store.keys.stream(AGGREGATE_TYPE, i) for i in ids]
    plain = bench.raw_key("plain")
    before = _used(client)
    copy_streams(client, streams, plain)
    baseline = (_used(client) - before) / events
    parts = {
        "aggregate streams": _usage(client, streams),
        "partition log": _usage(client, [store.keys.log(0)]),
        "snapshots": _usage(client, [store.keys.snapshot(AGGREGATE_TYPE, i) for i in ids]),
    }
    note = bench.note("memory_aggregates")
    measure = f"{aggregates:,} aggregates x {per} events, {label} settings"
    rows = [
        Row(
            f"w10.{label}.total",
            10,
            measure,
            "B/event",
            Stat.of([ours]),
            "the same entries in one plain stream",
            Stat.of([baseline]),
            ours_name="streams + log + snapshots (used_memory)",
            note=note,
        ),
    ]
    for part, size in parts.items():
        rows.append(
            Row(
                f"w10.{label}.{part.split()[-1]}",
                10,
                f"{measure}: {part}",
                "B/event",
                Stat.of([size / events]),
                ours_name=f"{part} (MEMORY USAGE)",
                note=note,
            )
        )
    rows.append(
        Row(
            f"w10.{label}.plain_usage",
            10,
            f"{measure}: plain stream",
            "B/event",
            Stat.of([_usage(client, [plain]) / events]),
            ours_name="baseline (MEMORY USAGE)",
        )
    )
    return rows


def run(bench: Bench) -> list[Row]:
    """On the recommended server, then (if this run started it) the default one."""
    rows = _measure(bench, bench.servers.recommended, "recommended")
    if bench.servers.default is not None:
        rows += _measure(bench, bench.servers.default, "default")
    return rows
