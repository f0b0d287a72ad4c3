"""Workloads 4-6: loading aggregates.

4. reload 1,000 aggregates of 10 events (aggregates/s): ``Repository.get`` next to
   eventsourcing's ``repository.get``, and to one raw XRANGE per aggregate stream;
5. one aggregate of 10,000 events: load time without a snapshot, with a snapshot at the
   last event, and at snapshot + 99 events, next to eventsourcing; and the write cost of
   automatic snapshots every 100 (one save per event, with / without), for both libraries;
6. load time with snapshots of histories of 100, 10,000 and 1,000,000 events (ours; each
   next to the 100-event load: it should be flat).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from benchmarks._context import Bench, Run
from benchmarks._domain import BenchAccount, BenchDeposited, BenchOpened, new_account
from benchmarks._esbackends import MakeApp, sessions
from benchmarks._esdomain import Bank, new_es_account, snapshotting_bank
from benchmarks._measure import Figures, Stat, elapsed, rate, take_turns
from benchmarks._results import Row
from eventstore import Repository

__all__ = ["run"]


def _load_ms(repeats: int, load: Callable[[], object]) -> Figures:
    load()  # warm-up
    return {"ms": statistics.median(elapsed(load) for _ in range(repeats)) * 1e3}


# -- workload 4 -------------------------------------------------------------------------


def _reload_runs(bench: Bench, makers: dict[str, MakeApp]) -> dict[str, Run]:
    aggregates, per = bench.sizes.aggregates, bench.sizes.events_per_aggregate
    store = bench.store()
    repository = Repository(store, BenchAccount)
    ids = []
    for _ in range(aggregates):
        account = new_account(per)
        repository.save(account)
        ids.append(account.id)
    streams = [store.keys.stream(BenchAccount.aggregate_type, i) for i in ids]
    client = bench.client()

    validators = {
        cls.event_type.encode(): cls.__pydantic_validator__ for cls in (BenchOpened, BenchDeposited)
    }

    def raw() -> None:
        for stream in streams:
            client.xrange(stream)

    def typed() -> None:  # the least a typed reload does: every event validated
        for stream in streams:
            entries: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(stream)  # type: ignore[assignment]
            for _, fields in entries:
                validators[fields[b"t"]].validate_json(fields[b"d"])

    def ours() -> None:
        for aggregate_id in ids:
            repository.get(aggregate_id)

    runs: dict[str, Run] = {
        "raw": lambda: {"rate": rate(aggregates, raw)},
        "typed": lambda: {"rate": rate(aggregates, typed)},
        "get": lambda: {"rate": rate(aggregates, ours)},
    }
    for name, make in makers.items():
        runs[name] = _es_reload_run(make(Bank), aggregates, per)
    return runs


def _es_reload_run(app: Bank, aggregates: int, per: int) -> Run:
    ids = []
    for _ in range(aggregates):
        account = new_es_account(per)
        app.save(account)
        ids.append(account.id)

    def reload() -> None:
        for aggregate_id in ids:
            app.repository.get(aggregate_id)

    return lambda: {"rate": rate(aggregates, reload)}


_W4_CEILINGS = (
    ("w4.ceiling", "raw", "ceiling: raw XRANGE per stream, no framework"),
    (
        "w4.ceiling.typed",
        "typed",
        "ceiling: raw XRANGE per stream + pydantic validation of each event, no framework",
    ),
)
"""Row key, contender and label of workload 4's ceilings: untyped, and typed as a reload is."""


def _workload4(bench: Bench, makers: dict[str, MakeApp]) -> list[Row]:
    stats = take_turns(bench.sizes.runs, _reload_runs(bench, makers))
    sizes = bench.sizes
    measure = f"reload {sizes.aggregates:,} aggregates of {sizes.events_per_aggregate} events"
    note = bench.note("aggregates")
    get = stats["get"]["rate"]
    return [
        Row(
            "w4.get.raw",
            4,
            measure,
            "agg/s",
            get,
            "raw XRANGE of each stream",
            stats["raw"]["rate"],
            ours_name="Repository.get",
            note=note,
        ),
        *bench.es_rows(
            "w4.get",
            4,
            measure,
            "agg/s",
            get,
            {name: s["rate"] for name, s in stats.items()},
            note=note,
        ),
        *(
            row
            for key, figure, ours_name in _W4_CEILINGS
            for row in bench.es_rows(
                key,
                4,
                measure,
                "agg/s",
                stats[figure]["rate"],
                {name: s["rate"] for name, s in stats.items()},
                note=note,
                ours_name=ours_name,
            )
        ),
    ]


# -- workload 5 -------------------------------------------------------------------------


def _grow(
    save: Callable[[], object], deposit: Callable[[int], None], events: int, batch: int
) -> None:
    """Deposit until the aggregate has ``events`` events, saving every ``batch`` of them."""
    for version in range(2, events + 1):
        deposit(version)
        if version % batch == 0 or version == events:
            save()


def _ours_history(repository: Repository[BenchAccount], events: int, batch: int) -> str:
    account = new_account(1)
    repository.save(account)
    _grow(lambda: repository.save(account), account.deposit, events, batch)
    return account.id


def _es_history(app: Bank, events: int, batch: int) -> object:
    account = new_es_account(1)
    app.save(account)
    _grow(lambda: app.save(account), account.deposit, events, batch)
    return account.id


def _long_runs(bench: Bench, makers: dict[str, MakeApp]) -> dict[str, Run]:
    sizes = bench.sizes
    every, events, repeats = sizes.snapshot_every, sizes.long_history, sizes.load_repeats
    store = bench.store()
    plain = Repository(store, BenchAccount)
    snapping = Repository(store, BenchAccount, snapshot_every=every)
    whole = _ours_history(plain, events, every)
    at_end = _ours_history(snapping, events, every)
    after = _ours_history(snapping, events + every - 1, every)
    ceiling = _typed_xrange(bench, store.keys.stream(BenchAccount.aggregate_type, whole))
    runs: dict[str, Run] = {
        "none": lambda: _load_ms(repeats, lambda: plain.get(whole)),
        "ceiling": lambda: _load_ms(repeats, ceiling),
        "end": lambda: _load_ms(repeats, lambda: snapping.get(at_end)),
        "after": lambda: _load_ms(repeats, lambda: snapping.get(after)),
        "write.plain": lambda: {"s": _write_each(plain, sizes.write_cost_events)},
        "write.snap": lambda: {"s": _write_each(snapping, sizes.write_cost_events)},
    }
    for name, make in makers.items():
        runs |= _es_long_runs(name, make(Bank), make(snapshotting_bank(every)), bench)
    return runs


def _typed_xrange(bench: Bench, stream: str) -> Callable[[], object]:
    """The least any typed load does, with no framework: one XRANGE of the whole stream
    and pydantic's own validator on each payload (no version checks, no projector)."""
    client = bench.client()
    validators = {
        cls.event_type.encode(): cls.__pydantic_validator__ for cls in (BenchOpened, BenchDeposited)
    }

    def load() -> object:
        entries: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(stream)  # type: ignore[assignment]
        return [validators[f[b"t"]].validate_json(f[b"d"]) for _, f in entries]

    return load


def _write_each(repository: Repository[BenchAccount], events: int) -> float:
    account = new_account(1)

    def write() -> None:
        repository.save(account)
        for amount in range(2, events + 1):
            account.deposit(amount)
            repository.save(account)

    return elapsed(write)


def _es_write_each(app: Bank, events: int) -> float:
    account = new_es_account(1)

    def write() -> None:
        app.save(account)
        for amount in range(2, events + 1):
            account.deposit(amount)
            app.save(account)

    return elapsed(write)


def _es_long_runs(name: str, plain: Bank, snapping: Bank, bench: Bench) -> dict[str, Run]:
    sizes = bench.sizes
    every, events, repeats = sizes.snapshot_every, sizes.long_history, sizes.load_repeats
    whole = _es_history(plain, events, every)
    at_end = _es_history(snapping, events, every)
    after = _es_history(snapping, events + every - 1, every)
    # eventsourcing is slow enough at 10,000-event loads that fewer repeats are as steady
    few = max(1, repeats // 5)
    return {
        f"{name}.none": lambda: _load_ms(few, lambda: plain.repository.get(whole)),
        f"{name}.end": lambda: _load_ms(repeats, lambda: snapping.repository.get(at_end)),
        f"{name}.after": lambda: _load_ms(repeats, lambda: snapping.repository.get(after)),
        f"{name}.write.plain": lambda: {"s": _es_write_each(plain, sizes.write_cost_events)},
        f"{name}.write.snap": lambda: {"s": _es_write_each(snapping, sizes.write_cost_events)},
    }


def _workload5(bench: Bench, makers: dict[str, MakeApp]) -> list[Row]:
    stats = take_turns(bench.sizes.runs, _long_runs(bench, makers))
    sizes = bench.sizes
    events, every = sizes.long_history, sizes.snapshot_every
    note = bench.note("long_history", "load_repeats")
    rows = []
    for kind, measure in (
        ("none", f"load {events:,} events, no snapshot"),
        ("end", f"load {events:,} events, snapshot at {events:,}"),
        ("after", f"load {events + every - 1:,} events, snapshot + {every - 1}"),
    ):
        theirs = {name: stats[f"{name}.{kind}"]["ms"] for name in makers}
        rows += bench.es_rows(
            f"w5.load.{kind}", 5, measure, "ms", stats[kind]["ms"], theirs, note=note
        )
    rows += bench.es_rows(
        "w5.load.ceiling",
        5,
        f"load {events:,} events, no snapshot",
        "ms",
        stats["ceiling"]["ms"],
        {name: stats[f"{name}.none"]["ms"] for name in makers},
        note=note,
        ours_name="ceiling: raw XRANGE + pydantic validation of each event, no framework",
    )
    rows += _write_cost_rows(bench, stats, list(makers))
    return rows


def _write_cost_rows(
    bench: Bench, stats: dict[str, dict[str, Stat]], names: list[str]
) -> list[Row]:
    sizes = bench.sizes
    measure = (
        f"write {sizes.write_cost_events:,} events, 1 save each, "
        f"snapshot every {sizes.snapshot_every} vs none"
    )
    note = bench.note("write_cost_events")
    rows = [
        Row(
            "w5.write.ours",
            5,
            measure,
            "s",
            stats["write.snap"]["s"],
            "ours without snapshots",
            stats["write.plain"]["s"],
            ours_name="Repository with snapshot_every",
            note=note,
        ),
    ]
    for backend in bench.backends:
        name = backend.name
        with_snap = stats.get(f"{name}.write.snap", {}).get("s")
        without = stats.get(f"{name}.write.plain", {}).get("s")
        rows.append(
            Row(
                f"w5.write.{name}",
                5,
                measure,
                "s",
                with_snap,
                f"eventsourcing {name} without snapshots",
                without,
                ours_name=f"eventsourcing {name} with snapshotting_intervals",
                note=note if backend.available else backend.unavailable,
            )
        )
    theirs = {name: stats[f"{name}.write.plain"]["s"] for name in names}
    rows += bench.es_rows(
        "w5.write.plain",
        5,
        f"write {sizes.write_cost_events:,} events, 1 save each, no snapshots",
        "s",
        stats["write.plain"]["s"],
        theirs,
        note=note,
    )
    return rows


# -- workload 6 -------------------------------------------------------------------------


def _history_runs(bench: Bench) -> dict[str, Run]:
    store = bench.store()
    every = bench.sizes.snapshot_every
    snapping = Repository(store, BenchAccount, snapshot_every=every)
    runs: dict[str, Run] = {}
    for events in bench.sizes.histories:
        aggregate_id = _ours_history(snapping, events, max(every, min(1000, events)))
        runs[str(events)] = _load_run(snapping, aggregate_id, bench.sizes.load_repeats * 5)
    return runs


def _load_run(repository: Repository[BenchAccount], aggregate_id: str, repeats: int) -> Run:
    return lambda: _load_ms(repeats, lambda: repository.get(aggregate_id))


def _workload6(bench: Bench) -> list[Row]:
    started = time.perf_counter()
    stats = take_turns(bench.sizes.runs, _history_runs(bench))
    smallest = str(bench.sizes.histories[0])
    note = bench.note("histories")
    rows = [
        Row(
            f"w6.load.{events}",
            6,
            f"load with snapshot, history of {events:,} events",
            "ms",
            stats[str(events)]["ms"],
            f"the same load, history of {int(smallest):,}",
            stats[smallest]["ms"],
            ours_name="Repository.get",
            note=note,
        )
        for events in bench.sizes.histories
    ]
    seconds = time.perf_counter() - started
    print(f"  (workload 6 built its histories and loaded them in {seconds:.0f} s)")
    return rows


def run(bench: Bench) -> list[Row]:
    """Workloads 4-6; eventsourcing on fresh storage for each of 4 and 5."""
    rows: list[Row] = []
    for workload in (_workload4, _workload5):
        with sessions(bench.backends) as makers:
            rows += workload(bench, makers)
    rows += _workload6(bench)
    return rows
