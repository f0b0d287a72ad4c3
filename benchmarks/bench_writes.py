"""Workloads 1-3: appending.

1. one event with an expected version: ``store.append`` p50/p99 next to one raw XADD round
   trip, and the ceiling, one raw EVALSHA of the least atomic expected-version append in
   our layout, next to it too; command + ``Repository.save`` next to command +
   eventsourcing ``app.save``;
2. 1,000 aggregates x 10 events, one save each (events/s): next to one raw EVALSHA per
   aggregate carrying its 10 XADDs, a raw pipeline of 10 XADDs, and eventsourcing;
3. 10,000 events, one save per event, and get + command + save per event (events/s),
   next to eventsourcing doing the same.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from benchmarks._context import Bench, Run
from benchmarks._domain import AGGREGATE_TYPE, BenchAccount, BenchDeposited, new_account
from benchmarks._esbackends import sessions
from benchmarks._esdomain import Bank, EsAccount, new_es_account
from benchmarks._measure import Figures, percentile, rate, take_turns
from benchmarks._raw import APPEND_CEILING_SCRIPT, BATCH_SCRIPT, payload
from benchmarks._results import Row
from eventstore import EventStore, ExpectedVersion, Repository

__all__ = ["run"]

WARMUP = 50


def _latencies(samples: int, once: Any) -> Figures:
    for _ in range(WARMUP):
        once()
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        once()
        times.append(time.perf_counter() - start)
    return {"p50": percentile(times, 50) * 1e6, "p99": percentile(times, 99) * 1e6}


def _append_ceiling(bench: Bench) -> Any:
    """One raw EVALSHA of ``APPEND_CEILING_SCRIPT`` per event: a fresh event id and time,
    the payload encoded once, no framework."""
    client = bench.client()
    sha = client.script_load(APPEND_CEILING_SCRIPT)
    keys = [bench.raw_key(part) for part in ("stream", "log", "pos")]
    data = json.dumps({"amount": 1})
    version = [0]

    def append() -> None:
        event_id, now_ms = str(uuid.uuid4()), int(time.time() * 1000)
        args = (version[0], "BenchDeposited", 1, event_id, now_ms, data, "BenchAccount:raw")
        reply = client.evalsha(sha, 3, *keys, *args)
        if reply[0] != b"ok":
            raise RuntimeError(f"the ceiling's append was refused: {reply!r}")
        version[0] += 1

    return append


def _single_runs(bench: Bench, store: EventStore, apps: dict[str, Bank]) -> dict[str, Run]:
    samples = bench.sizes.latency_samples
    client = bench.client()
    repository = Repository(store, BenchAccount)
    account, aggregate_id, version = new_account(1), str(uuid.uuid4()), [0]
    repository.save(account)
    event, raw_key, fields = BenchDeposited(amount=1), bench.raw_key("xadd"), payload(1)
    ceiling = _append_ceiling(bench)

    def append() -> None:
        store.append(AGGREGATE_TYPE, aggregate_id, [event], expected_version=version[0])
        version[0] += 1

    def save() -> None:
        account.deposit(1)
        repository.save(account)

    runs: dict[str, Run] = {
        "raw": lambda: _latencies(samples, lambda: client.xadd(raw_key, fields)),  # type: ignore[arg-type]
        "append": lambda: _latencies(samples, append),
        "save": lambda: _latencies(samples, save),
        "ceiling": lambda: _latencies(samples, ceiling),
    }
    for name, app in apps.items():
        runs[name] = _es_single_run(app, samples)
    return runs


def _es_single_run(app: Bank, samples: int) -> Run:
    account = new_es_account(1)
    app.save(account)

    def save() -> None:
        account.deposit(1)
        app.save(account)

    return lambda: _latencies(samples, save)


def _workload1(bench: Bench, apps: dict[str, Bank]) -> list[Row]:
    stats = take_turns(bench.sizes.runs, _single_runs(bench, bench.store(), apps))
    note = bench.note("latency_samples")
    rows = []
    for q in ("p50", "p99"):
        rows.append(
            Row(
                f"w1.append.{q}",
                1,
                f"append 1 event, expected version: {q}",
                "us",
                stats["append"][q],
                "raw XADD round trip",
                stats["raw"][q],
                ours_name="store.append",
                note=note,
            )
        )
        rows.append(
            Row(
                f"w1.ceiling.{q}",
                1,
                f"append 1 event, expected version: {q}",
                "us",
                stats["ceiling"][q],
                "raw XADD round trip",
                stats["raw"][q],
                ours_name="ceiling: raw EVALSHA of the least atomic expected-version append "
                "(XLEN check, INCR, 2 XADD), no framework",
                note=note,
            )
        )
        rows += bench.es_rows(
            f"w1.save.{q}",
            1,
            f"command + save 1 event: {q}",
            "us",
            stats["save"][q],
            {name: s[q] for name, s in stats.items()},
            note=note,
        )
    return rows


def _batch_runs(bench: Bench, store: EventStore, apps: dict[str, Bank]) -> dict[str, Run]:
    aggregates, per = bench.sizes.aggregates, bench.sizes.events_per_aggregate
    total = aggregates * per
    client = bench.client()
    repository = Repository(store, BenchAccount)
    script = client.register_script(BATCH_SCRIPT)

    def save_each() -> None:
        for _ in range(aggregates):
            repository.save(new_account(per))

    def append_run() -> Figures:
        batches = [list(new_account(per).pending_events) for _ in range(aggregates)]
        start = time.perf_counter()
        for events in batches:
            store.append(AGGREGATE_TYPE, str(uuid.uuid4()), events, ExpectedVersion.NO_STREAM)
        return {"rate": total / (time.perf_counter() - start)}

    def raw_script() -> None:
        for _ in range(aggregates):
            args = [payload(amount)["d"] for amount in range(1, per + 1)]
            script(keys=[bench.raw_key("batch")], args=args)

    def raw_pipeline() -> None:
        for _ in range(aggregates):
            key = bench.raw_key("pipe")
            with client.pipeline(transaction=False) as pipe:
                for amount in range(1, per + 1):
                    pipe.xadd(key, payload(amount))  # type: ignore[arg-type]
                pipe.execute()

    runs: dict[str, Run] = {
        "script": lambda: {"rate": rate(total, raw_script)},
        "pipeline": lambda: {"rate": rate(total, raw_pipeline)},
        "save": lambda: {"rate": rate(total, save_each)},
        "append": append_run,
    }
    for name, app in apps.items():
        runs[name] = _es_batch_run(app, aggregates, per)
    return runs


def _es_batch_run(app: Bank, aggregates: int, per: int) -> Run:
    def save_each() -> None:
        for _ in range(aggregates):
            app.save(new_es_account(per))

    return lambda: {"rate": rate(aggregates * per, save_each)}


def _workload2(bench: Bench, apps: dict[str, Bank]) -> list[Row]:
    stats = take_turns(bench.sizes.runs, _batch_runs(bench, bench.store(), apps))
    per = bench.sizes.events_per_aggregate
    measure = f"{bench.sizes.aggregates:,} aggregates x {per} events, 1 save each"
    note = bench.note("aggregates")
    save, append = stats["save"]["rate"], stats["append"]["rate"]
    return [
        Row(
            "w2.save.script",
            2,
            measure,
            "ev/s",
            save,
            f"raw EVALSHA of {per} XADDs per aggregate",
            stats["script"]["rate"],
            ours_name="commands + Repository.save",
            note=note,
        ),
        Row(
            "w2.save.pipeline",
            2,
            measure,
            "ev/s",
            save,
            f"raw pipeline of {per} XADDs per aggregate",
            stats["pipeline"]["rate"],
            ours_name="commands + Repository.save",
            note=note,
        ),
        Row(
            "w2.append.script",
            2,
            measure,
            "ev/s",
            append,
            f"raw EVALSHA of {per} XADDs per aggregate",
            stats["script"]["rate"],
            ours_name="store.append (events built beforehand)",
            note=note,
        ),
        *bench.es_rows(
            "w2.save",
            2,
            measure,
            "ev/s",
            save,
            {name: s["rate"] for name, s in stats.items()},
            note=note,
        ),
        *bench.es_rows(
            "w2.ceiling",
            2,
            measure,
            "ev/s",
            stats["script"]["rate"],
            {name: s["rate"] for name, s in stats.items()},
            note=note,
            ours_name="ceiling: raw EVALSHA per aggregate, no framework",
        ),
    ]


def _one_by_one(
    aggregates: int, per: int, save_new: Any, save_next: Any
) -> tuple[float, list[Any]]:
    """Events/s of saving ``aggregates`` x ``per`` events one save each, round-robin."""
    start = time.perf_counter()
    ids = [save_new() for _ in range(aggregates)]
    for amount in range(1, per):
        for index, aggregate_id in enumerate(ids):
            ids[index] = save_next(aggregate_id, amount)
    return aggregates * per / (time.perf_counter() - start), ids


def _single_save_runs(bench: Bench, store: EventStore, apps: dict[str, Bank]) -> dict[str, Run]:
    per = bench.sizes.events_per_aggregate
    aggregates = bench.sizes.single_saves // per
    repository = Repository(store, BenchAccount)

    def new() -> BenchAccount:
        account = new_account(1)
        repository.save(account)
        return account

    def keep(account: BenchAccount, amount: int) -> BenchAccount:
        account.deposit(amount)
        repository.save(account)
        return account

    def reload(account: BenchAccount, amount: int) -> BenchAccount:
        return keep(repository.get(account.id), amount)

    runs: dict[str, Run] = {
        "save": lambda: {"rate": _one_by_one(aggregates, per, new, keep)[0]},
        "get_save": lambda: {"rate": _one_by_one(aggregates, per, new, reload)[0]},
        **_raw_single_save_runs(bench, aggregates, per),
    }
    for name, app in apps.items():
        runs[f"{name}.save"], runs[f"{name}.get_save"] = _es_single_save_runs(app, aggregates, per)
    return runs


def _raw_single_save_runs(bench: Bench, aggregates: int, per: int) -> dict[str, Run]:
    """The ceiling: one XADD round trip per event (and one XRANGE before it), no framework."""
    client = bench.client()

    def new() -> str:
        key = bench.raw_key("single")
        client.xadd(key, payload(1))  # type: ignore[arg-type]
        return key

    def keep(key: str, amount: int) -> str:
        client.xadd(key, payload(amount))  # type: ignore[arg-type]
        return key

    def reload(key: str, amount: int) -> str:
        client.xrange(key)
        return keep(key, amount)

    return {
        "raw.save": lambda: {"rate": _one_by_one(aggregates, per, new, keep)[0]},
        "raw.get_save": lambda: {"rate": _one_by_one(aggregates, per, new, reload)[0]},
    }


def _es_single_save_runs(app: Bank, aggregates: int, per: int) -> tuple[Run, Run]:
    def new() -> EsAccount:
        account = new_es_account(1)
        app.save(account)
        return account

    def keep(account: EsAccount, amount: int) -> EsAccount:
        account.deposit(amount)
        app.save(account)
        return account

    def reload(account: EsAccount, amount: int) -> EsAccount:
        return keep(app.repository.get(account.id), amount)

    return (
        lambda: {"rate": _one_by_one(aggregates, per, new, keep)[0]},
        lambda: {"rate": _one_by_one(aggregates, per, new, reload)[0]},
    )


def _workload3(bench: Bench, apps: dict[str, Bank]) -> list[Row]:
    stats = take_turns(bench.sizes.runs, _single_save_runs(bench, bench.store(), apps))
    note = bench.note("single_saves")
    events = bench.sizes.single_saves
    rows = []
    for kind, measure, raw in (
        ("save", f"{events:,} events, one save per event", "XADD"),
        ("get_save", f"{events:,} events, get + command + save per event", "XRANGE + XADD"),
    ):
        theirs = {name: stats[f"{name}.{kind}"]["rate"] for name in apps}
        rows += bench.es_rows(
            f"w3.{kind}", 3, measure, "ev/s", stats[kind]["rate"], theirs, note=note
        )
        rows += bench.es_rows(
            f"w3.{kind}.ceiling",
            3,
            measure,
            "ev/s",
            stats[f"raw.{kind}"]["rate"],
            theirs,
            note=note,
            ours_name=f"ceiling: raw {raw} round trips, no framework",
        )
    return rows


def run(bench: Bench) -> list[Row]:
    """Workloads 1-3; eventsourcing applications on fresh storage for each workload."""
    rows: list[Row] = []
    for workload in (_workload1, _workload2, _workload3):
        with sessions(bench.backends) as makers:
            rows += workload(bench, {name: make(Bank) for name, make in makers.items()})
    return rows
