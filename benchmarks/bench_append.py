"""Append and load: our calls next to the raw redis-py commands they stand on.

- one event: ``Repository.save`` and ``EventStore.append`` (p50/p99) vs one raw XADD;
- a batch of 100 events: ``EventStore.append`` vs one raw EVALSHA carrying 100 XADDs,
  and vs 100 XADDs in one pipeline (events/s);
- load: ``Repository.get`` of an aggregate with 10 and 100 events (no snapshot), and of
  one with 100 events and a snapshot, vs a raw XRANGE of the same whole stream.

Run with ``python -m benchmarks --only append``.
"""

from __future__ import annotations

import functools
import itertools
import statistics
import uuid
from collections.abc import Callable, Sequence

import redis

from aggregates import Aggregate, DomainEvent, projector
from benchmarks._harness import Comparison, latencies, percentile, print_report, rate
from eventstore import EventStore, ExpectedVersion, Repository

__all__ = ["run"]

SINGLE_CALLS = 2000
LOAD_CALLS = 1000
BATCH = 100
BATCH_ROUNDS = 10
ROUNDS = 5  # ours and the baselines alternate this many times

RAW_BATCH_SCRIPT = """
for i = 1, #ARGV do
  redis.call('XADD', KEYS[1], '*', 't', 'BenchDeposited', 'd', ARGV[i])
end
return #ARGV
"""


class BenchDeposited(DomainEvent):
    """The benchmark's one event type: a small payload, like most domain events."""

    amount: int
    note: str = "benchmark"


class BenchAccount(Aggregate):
    """A minimal aggregate: one integer of state."""

    balance: int = 0

    def deposit(self, amount: int) -> None:
        self.trigger(BenchDeposited(amount=amount))

    @projector(BenchDeposited)
    def _deposited(self, event: BenchDeposited) -> None:
        self.balance += event.amount


def _interleaved(fns: Sequence[Callable[[], object]], calls: int, warmup: int) -> list[list[float]]:
    """Latencies of each of ``fns``, measured in alternating rounds.

    The machine is shared: alternating spreads background noise over ours and the
    baseline alike instead of charging it to whichever ran during a busy second.
    """
    for fn in fns:
        latencies(fn, 0, warmup)
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(ROUNDS):
        for measured, fn in zip(samples, fns, strict=True):
            measured.extend(latencies(fn, calls // ROUNDS, warmup=0))
    return samples


def _interleaved_rates(count: int, fns: Sequence[Callable[[], object]]) -> list[float]:
    """Items per second of each of ``fns`` (median of alternating rounds)."""
    for fn in fns:
        fn()
    rounds: list[list[float]] = [[] for _ in fns]
    for _ in range(ROUNDS):
        for measured, fn in zip(rounds, fns, strict=True):
            measured.append(rate(count, fn))
    return [statistics.median(measured) for measured in rounds]


def _us(values: list[float], q: float) -> float:
    return percentile(values, q) * 1e6


def _latency_rows(
    name: str, ours: list[float], raw: list[float], raw_name: str
) -> list[Comparison]:
    return [
        Comparison(f"{name} p50", _us(ours, 50), _us(raw, 50), "us", f"{raw_name} p50"),
        Comparison(f"{name} p99", _us(ours, 99), _us(raw, 99), "us", f"{raw_name} p99"),
    ]


def _single_appends(store: EventStore, client: redis.Redis) -> list[Comparison]:
    accounts = Repository(store, BenchAccount)
    account = BenchAccount()

    def save_one() -> None:
        account.deposit(1)
        accounts.save(account)

    versions = itertools.count()
    aggregate_id = str(uuid.uuid4())

    def append_one() -> None:
        store.append("BenchAccount", aggregate_id, [BenchDeposited(amount=1)], next(versions))

    raw_key, data = f"raw:{uuid.uuid4()}", BenchDeposited(amount=1).model_dump_json()

    def xadd_one() -> None:
        client.xadd(raw_key, {"t": "BenchDeposited", "d": data})

    raw, saved, appended = _interleaved([xadd_one, save_one, append_one], SINGLE_CALLS, 200)
    return [
        *_latency_rows("Repository.save, 1 event", saved, raw, "XADD"),
        *_latency_rows("store.append, 1 event", appended, raw, "XADD"),
    ]


def _batch_appends(store: EventStore, client: redis.Redis) -> list[Comparison]:
    events = [BenchDeposited(amount=i) for i in range(BATCH)]
    total = BATCH * BATCH_ROUNDS

    def ours() -> None:
        for _ in range(BATCH_ROUNDS):
            store.append("BenchAccount", str(uuid.uuid4()), events, ExpectedVersion.NO_STREAM)

    script = client.register_script(RAW_BATCH_SCRIPT)
    payloads = [event.model_dump_json() for event in events]

    def raw_script() -> None:
        for _ in range(BATCH_ROUNDS):
            script(keys=[f"raw:{uuid.uuid4()}"], args=payloads)

    def raw_pipeline() -> None:
        for _ in range(BATCH_ROUNDS):
            key = f"raw:{uuid.uuid4()}"
            with client.pipeline(transaction=False) as pipe:
                for data in payloads:
                    pipe.xadd(key, {"t": "BenchDeposited", "d": data})
                pipe.execute()

    ours_rate, script_rate, pipeline_rate = _interleaved_rates(
        total, [ours, raw_script, raw_pipeline]
    )
    name = "store.append, 100-event batch"
    return [
        Comparison(name, ours_rate, script_rate, "ev/s", "EVALSHA with 100 XADDs"),
        Comparison(name, ours_rate, pipeline_rate, "ev/s", "pipeline of 100 XADDs"),
    ]


def _aggregate_with(accounts: Repository[BenchAccount], events: int) -> str:
    account = BenchAccount()
    for _ in range(events):
        account.deposit(1)
    accounts.save(account)
    return account.id


def _load_rows(
    store: EventStore, client: redis.Redis, name: str, get: Callable[[], object], aggregate_id: str
) -> list[Comparison]:
    stream = store.keys.stream("BenchAccount", aggregate_id)
    raw, ours = _interleaved([lambda: client.xrange(stream), get], LOAD_CALLS, warmup=100)
    return _latency_rows(name, ours, raw, "XRANGE whole stream")


def _loads(store: EventStore, client: redis.Redis) -> list[Comparison]:
    plain = Repository(store, BenchAccount)
    snapshotting = Repository(store, BenchAccount, snapshot_every=BATCH)
    rows = []
    for events in (10, 100):
        aggregate_id = _aggregate_with(plain, events)
        get = functools.partial(plain.get, aggregate_id)
        rows += _load_rows(store, client, f"Repository.get, {events} events", get, aggregate_id)
    # the same 100 events decoded but not applied: separates decoding from projecting
    read = functools.partial(store.read, "BenchAccount", aggregate_id)
    rows += _load_rows(store, client, "store.read, 100 events", read, aggregate_id)
    snapped = _aggregate_with(snapshotting, BATCH)  # the save crosses 100: snapshot at 100
    assert store.read_snapshot("BenchAccount", snapped) is not None
    rows += _load_rows(
        store,
        client,
        "Repository.get, 100 events + snapshot",
        lambda: snapshotting.get(snapped),
        snapped,
    )
    return rows


def run(url: str) -> None:
    """Measure appends and loads on the server at ``url`` and print the comparison."""
    namespace = f"bench{uuid.uuid4().hex[:6]}"
    client = redis.Redis.from_url(url)
    try:
        with EventStore.from_url(url, namespace=namespace) as store:  # defaults: notify on
            rows = _single_appends(store, client)
            rows += _batch_appends(store, client)
            rows += _loads(store, client)
            print_report(f"append and load (Redis {store.server.version_text})", rows)
    finally:
        _clean_up(client, namespace)
        client.close()


def _clean_up(client: redis.Redis, namespace: str) -> None:
    # --url may point at a server that outlives the run: leave nothing behind
    for pattern in (f"{{{namespace}:*", f"{namespace}:*", "raw:*"):
        keys = list(client.scan_iter(match=pattern, count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
