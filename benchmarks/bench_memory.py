"""Workload 10: memory, in bytes per event, for 10,000 aggregates x 10 events.

Each aggregate is saved with ``snapshot_every=10``, so the figure covers all we keep:
its stream, its log pointers, its snapshot, the type index and the position counter.
Total bytes are the server's ``used_memory`` before and after; the baseline is the very
same entries (every field as our aggregate streams store them) appended to one plain
stream, measured the same way. Measured on the server with recommended settings and on
the one with Redis's defaults (``stream-node-max-bytes 4096``): one run each, as memory
does not vary between runs.

The breakdown by kind is measured by deletion, once every total is taken: the drop in
``used_memory`` when the partition log, then the snapshots, the aggregate streams and the
type index, types and position keys are DELeted, one kind after the other. What the total
holds beyond them is "other": about half of it the keyspace's hash table, grown for the
20,000 new keys, which deleting them does not shrink. The plain stream is priced the same
way. ``MEMORY USAGE`` is no measure of this: even with ``SAMPLES 0`` it is an estimate
that adds a fixed ~244 B per radix-tree node of a stream (it put streams at 223, the log
at 181 and the plain stream at 157 B/event where deleting them frees 136, 133 and 108).

``used_memory`` counts what the allocator handed out, so it drops as soon as a DEL frees
(``MEMORY PURGE`` only hands pages back to the OS, which ``used_memory`` does not see); a
server freeing lazily (``lazyfree-lazy-user-del yes``; the servers started here keep
Redis's ``no``) is waited for until nothing is pending. The AOF buffer (``mem_aof_buffer``:
commands on their way to the file, held longer while a background fsync runs) is left
out of every figure, or it would move each one by up to tens of kB.

Two ceilings, measured the same way on the same server, price the design itself (a stream
per aggregate, a log of pointers) whatever the framework does: raw ``XADD`` of the very
same entries (same ids, same fields) into one fresh stream per aggregate, its key name as
long as ours; then that plus a minimal log pointer per event (``<type>:<id>`` and the
version, at entry id ``0-<position>``), with no snapshot, index or event type.
"""

from __future__ import annotations

import time
from typing import Any, cast

import redis

from benchmarks._context import Bench
from benchmarks._domain import AGGREGATE_TYPE, BenchAccount, new_account
from benchmarks._measure import Stat
from benchmarks._raw import copy_each, copy_streams
from benchmarks._results import Row
from eventstore import EventStore, Repository

__all__ = ["run"]


def _used(client: redis.Redis) -> int:
    """``used_memory`` less the AOF buffer (commands on their way to the file, not data),
    once nothing is left for the server to free lazily."""
    while True:
        info: dict[str, Any] = client.info("memory")
        if not int(info.get("lazyfree_pending_objects", 0)):
            return int(info["used_memory"]) - int(info.get("mem_aof_buffer", 0))
        time.sleep(0.01)


def _freed(client: redis.Redis, keys: list[str]) -> int:
    """Bytes of ``used_memory`` freed by deleting ``keys`` (each of which must exist)."""
    before = _used(client)
    deleted = 0
    for start in range(0, len(keys), 1000):
        with client.pipeline(transaction=False) as pipe:
            for at in range(start, min(start + 1000, len(keys)), 100):
                pipe.delete(*keys[at : min(at + 100, start + 1000)])
            deleted += sum(cast(list[int], pipe.execute()))
    if deleted != len(keys):
        raise RuntimeError(f"deleted {deleted} of {len(keys)} keys: some were not there")
    return before - _used(client)


def _same_length(prefix: str, key: str) -> str:
    """``key`` with its start replaced by ``prefix``: a raw key as long as ours, its id kept."""
    return prefix + key[len(prefix) :]


def _ceilings(
    bench: Bench, client: redis.Redis, streams: list[str], ids: list[str]
) -> tuple[int, int]:
    """Bytes of raw per-aggregate streams, then of those plus minimal log pointers.

    The pointers are laid out as ours are: one partition, positions in the order the
    aggregates were saved (each save appends its events in one call).
    """
    prefix = f"benchraw{bench.run_id}:w10:"
    targets = [_same_length(prefix, stream) for stream in streams]
    if len(set(targets)) != len(targets):
        raise RuntimeError(f"the prefix {prefix!r} hides the aggregate ids of the keys")
    before = _used(client)
    copy_each(client, streams, targets)
    copied = _used(client) - before
    log, per = bench.raw_key("log"), bench.sizes.events_per_aggregate
    for start in range(0, len(ids), 100):
        with client.pipeline(transaction=False) as pipe:
            for n, aggregate_id in enumerate(ids[start : start + 100], start):
                for version in range(1, per + 1):
                    fields = {"k": f"{AGGREGATE_TYPE}:{aggregate_id}", "v": version}
                    pipe.xadd(log, fields, id=f"0-{n * per + version}")  # type: ignore[arg-type]
            pipe.execute()
    return copied, _used(client) - before


def _breakdown(
    client: redis.Redis, store: EventStore, ids: list[str], total: int
) -> dict[str, int]:
    """Bytes freed by deleting each kind of our keys, in turn; "other" is the rest of
    ``total``. Run once every total is taken: it deletes the namespace's keys."""
    keys, partitions = store.keys, range(store.keys.partitions)
    freed = {
        "log": _freed(client, [keys.log(p) for p in partitions]),
        "snapshots": _freed(client, [keys.snapshot(AGGREGATE_TYPE, i) for i in ids]),
        "streams": _freed(client, [keys.stream(AGGREGATE_TYPE, i) for i in ids]),
        "index": _freed(
            client,
            [
                key
                for p in partitions
                for key in (keys.position(p), keys.index(p, AGGREGATE_TYPE), keys.types(p))
            ],
        ),
    }
    return freed | {"other": total - sum(freed.values())}


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
    total = _used(client) - before
    ours = total / events
    streams = [store.keys.stream(AGGREGATE_TYPE, i) for i in ids]
    plain = bench.raw_key("plain")
    before = _used(client)
    copy_streams(client, streams, plain)
    baseline = (_used(client) - before) / events
    streams_only, with_log = _ceilings(bench, client, streams, ids)
    # a server's first DEL allocates the command's latency histogram (~12 kB, Redis 7):
    # not something any part holds
    client.delete(bench.raw_key("none"))
    freed = _breakdown(client, store, ids, total) | {"plain": _freed(client, [plain])}
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
    for suffix, size, what in (
        (
            ".streams",
            streams_only,
            "the same entries in one stream per aggregate, no log, no snapshot",
        ),
        ("", with_log, "those streams + a minimal log pointer per event (<type>:<id>, version)"),
    ):
        rows.append(
            Row(
                f"w10.{label}.ceiling{suffix}",
                10,
                measure,
                "B/event",
                Stat.of([size / events]),
                "the same entries in one plain stream",
                Stat.of([baseline]),
                ours_name=f"ceiling: {what}, no framework",
                note=note,
            )
        )
    for kind, part, what in (
        ("streams", "aggregate streams", "aggregate streams (freed by DEL)"),
        ("log", "partition log", "partition log (freed by DEL)"),
        ("snapshots", "snapshots", "snapshots (freed by DEL)"),
        ("index", "index + position", "type index, types and position keys (freed by DEL)"),
        ("other", "other", "other: the total less what deleting our keys freed"),
        ("plain", "plain stream", "baseline: the plain stream (freed by DEL)"),
    ):
        rows.append(
            Row(
                f"w10.{label}.{'plain_usage' if kind == 'plain' else kind}",
                10,
                f"{measure}: {part}",
                "B/event",
                Stat.of([freed[kind] / events]),
                ours_name=what,
                note=note,
            )
        )
    return rows


def run(bench: Bench) -> list[Row]:
    """On the recommended server, then (if this run started it) the default one."""
    rows = _measure(bench, bench.servers.recommended, "recommended")
    if bench.servers.default is not None:
        rows += _measure(bench, bench.servers.default, "default")
    return rows
