"""Property tests: snapshot replay, codec round trips, concurrent writers (threads, processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregates import DomainEvent
from eventstore import ConcurrencyError, EventStore, Repository
from eventstore._core.codec import decode_event, encode_event
from tests.domain import Account, Deposited
from tests.strategies import aggregate_ids, batches, json_objects, rich_events, writer_plans

ROOT = Path(__file__).resolve().parent.parent
# fixtures are per test, examples reuse them: every example works on fresh aggregate ids
FIXTURE_OK = settings(
    # keep what the profile suppresses (too_slow: every example talks to Redis)
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)


pytestmark = pytest.mark.both_fronts


def _replayed(events: list[DomainEvent], account_id: str) -> Account:
    account = Account(id=account_id)
    for event in events:
        account.apply(event)
    return account


def _expected_snapshot_version(batch_sizes: list[int], every: int) -> int:
    version, snapshot = 0, 0
    for size in batch_sizes:
        if (version + size) // every != version // every:
            snapshot = version + size
        version += size
    return snapshot


@FIXTURE_OK
@given(history=batches, every=st.integers(min_value=1, max_value=8), data=st.data())
def test_snapshot_plus_tail_equals_full_replay(
    store: EventStore, history: list[list[DomainEvent]], every: int, data: st.DataObject
) -> None:
    accounts = Repository(store, Account, snapshot_every=every)
    account = Account(id=str(uuid.uuid4()))
    for batch in history:
        for event in batch:
            account.trigger(event)
        accounts.save(account)
    events = [event for batch in history for event in batch]
    full = accounts.get(account.id, use_snapshot=False)
    with_snapshot = accounts.get(account.id)
    assert with_snapshot.state() == full.state() == _replayed(events, account.id).state()
    assert with_snapshot.version == full.version == len(events)
    snapshot_version = _expected_snapshot_version([len(b) for b in history], every)
    loaded = store.load("Account", account.id, fingerprint=Account.schema_fingerprint())
    assert (loaded.snapshot.version if loaded.snapshot else 0) == snapshot_version
    assert len(loaded.events) == len(events) - snapshot_version
    past = data.draw(st.integers(min_value=1, max_value=len(events)), label="past version")
    at_past = accounts.get(account.id, version=past)
    assert at_past.state() == _replayed(events[:past], account.id).state()
    assert at_past.version == past


@given(event=rich_events)
def test_codec_round_trips_generated_payloads(event: DomainEvent) -> None:
    encoded = encode_event(event)
    assert json.loads(encoded.data) == event.model_dump(mode="json")
    decoded = decode_event("stream", 1, encoded.event_type, 1, encoded.data.encode())
    assert decoded == event
    assert type(decoded) is type(event)


@FIXTURE_OK
@given(events=st.lists(rich_events, min_size=1, max_size=4), metadata=json_objects)
def test_generated_payloads_round_trip_through_redis(
    store: EventStore, events: list[DomainEvent], metadata: dict[str, Any]
) -> None:
    aggregate_id = str(uuid.uuid4())
    store.append("Rich", aggregate_id, events, 0, metadata=metadata, correlation_id="c-é")
    recorded = store.read("Rich", aggregate_id)
    assert [r.event for r in recorded] == events
    assert all(r.metadata == metadata for r in recorded)
    assert all(r.correlation_id == "c-é" for r in recorded)


@FIXTURE_OK
@given(ids=st.lists(aggregate_ids, min_size=1, max_size=5, unique=True))
def test_any_aggregate_id_round_trips_through_streams_and_the_log(
    store: EventStore, ids: list[str]
) -> None:
    prefix = uuid.uuid4().hex[:6]  # examples share the namespace: keep their ids apart
    before = store.last_position(0)
    for aggregate_id in ids:
        store.append("Odd", prefix + aggregate_id, [Deposited(amount=1)], 0)
        assert [r.aggregate_id for r in store.read("Odd", prefix + aggregate_id)] == [
            prefix + aggregate_id
        ]
    page = store.read_log(0, before)
    assert [(r.aggregate_type, r.aggregate_id, r.version) for r in page.events] == [
        ("Odd", prefix + aggregate_id, 1) for aggregate_id in ids
    ]


# -- concurrent writers -------------------------------------------------------------------


def _deposit_with_retry(accounts: Repository[Account], aggregate_id: str, amount: int) -> str:
    """Load, deposit, save; on a conflict reload and do it again. Returns the event id."""
    while True:
        account = accounts.get_or_none(aggregate_id) or Account(id=aggregate_id)
        account.deposit(amount)
        (event_id,) = account.pending_event_ids
        try:
            accounts.save(account)
        except ConcurrencyError:
            continue
        return event_id


def _check_history(
    store: EventStore, acknowledged: list[tuple[str, str, int]], before: dict[int, int]
) -> None:
    """Every acknowledged deposit is stored exactly once; versions and positions gap-free.

    ``before`` is each partition's last position before the writers started (earlier
    examples wrote to the same namespace): the new events must follow it without a gap.
    """
    by_aggregate: dict[str, list[tuple[str, int]]] = {}
    for aggregate_id, event_id, amount in acknowledged:
        by_aggregate.setdefault(aggregate_id, []).append((event_id, amount))
    positions: dict[int, list[int]] = {p: [] for p in before}
    for aggregate_id, deposits in by_aggregate.items():
        stored = store.read("Account", aggregate_id)
        assert [r.version for r in stored] == list(range(1, len(stored) + 1))
        assert Counter(r.event_id for r in stored) == Counter(e for e, _ in deposits)
        assert sum(r.event.amount for r in stored) == sum(a for _, a in deposits)  # type: ignore[attr-defined]
        for r in stored:
            positions[r.partition].append(r.position)
    for partition, seen in positions.items():
        expected = list(range(before[partition] + 1, before[partition] + len(seen) + 1))
        assert sorted(seen) == expected
        assert store.last_position(partition) == before[partition] + len(seen)
        page = store.read_log(partition, before[partition], limit=10_000)
        assert [e.position for e in page.events] == expected


@pytest.fixture
def partitioned(redis_url: str) -> Iterator[dict[int, EventStore]]:
    stores = {p: EventStore.from_url(redis_url, namespace=f"c{p}", partitions=p) for p in (1, 3)}
    try:
        yield stores
    finally:
        for opened in stores.values():
            opened.close()


def _fresh_ids(plans: list[list[tuple[str, int]]]) -> list[list[tuple[str, int]]]:
    prefix = uuid.uuid4().hex[:8]
    return [[(f"{prefix}-{name}", amount) for name, amount in plan] for plan in plans]


@FIXTURE_OK
@given(plans=writer_plans, partitions=st.sampled_from([1, 3]))
def test_concurrent_thread_writers_never_lose_or_duplicate(
    partitioned: dict[int, EventStore], plans: list[list[tuple[str, int]]], partitions: int
) -> None:
    store = partitioned[partitions]
    before = {p: store.last_position(p) for p in range(partitions)}
    plans = _fresh_ids(plans)
    accounts = Repository(store, Account)
    acknowledged: list[tuple[str, str, int]] = []
    lock = threading.Lock()
    start = threading.Barrier(len(plans))

    def writer(plan: list[tuple[str, int]]) -> None:
        start.wait()
        for aggregate_id, amount in plan:
            event_id = _deposit_with_retry(accounts, aggregate_id, amount)
            with lock:
                acknowledged.append((aggregate_id, event_id, amount))

    threads = [threading.Thread(target=writer, args=(plan,)) for plan in plans]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert len(acknowledged) == sum(len(plan) for plan in plans)
    _check_history(store, acknowledged, before)


WRITER = """
import json, sys
from eventstore import ConcurrencyError, EventStore, Repository
from tests.domain import Account

def _deposit_with_retry(accounts, aggregate_id, amount):
    while True:
        account = accounts.get_or_none(aggregate_id) or Account(id=aggregate_id)
        account.deposit(amount)
        (event_id,) = account.pending_event_ids
        try:
            accounts.save(account)
        except ConcurrencyError:
            continue
        return event_id

url, namespace, run, plan = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
store = EventStore.from_url(url, namespace=namespace)
accounts = Repository(store, Account)
store.client.incr(f"{run}:ready")
store.client.blpop([f"{run}:go"], timeout=60)
done = [(aggregate_id, _deposit_with_retry(accounts, aggregate_id, amount), amount)
        for aggregate_id, amount in plan]
store.close()
print(json.dumps(done))
"""


def _start_writers(
    url: str, namespace: str, plans: list[list[tuple[str, int]]]
) -> tuple[str, list[subprocess.Popen[str]]]:
    run = uuid.uuid4().hex
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, namespace, run, json.dumps(plan)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for plan in plans
    ]
    return run, procs


def _release_when_ready(store: EventStore, run: str, count: int) -> None:
    # every process is connected and waiting: start them at once for real contention
    deadline = time.monotonic() + 60
    while int(store.client.get(f"{run}:ready") or 0) < count:
        assert time.monotonic() < deadline, "writer processes did not start"
        time.sleep(0.02)
    store.client.rpush(f"{run}:go", *["go"] * count)


@settings(FIXTURE_OK, max_examples=4)  # each example starts 2-4 interpreters
@given(plans=writer_plans, partitions=st.sampled_from([1, 3]))
def test_concurrent_process_writers_never_lose_or_duplicate(
    partitioned: dict[int, EventStore],
    redis_url: str,
    plans: list[list[tuple[str, int]]],
    partitions: int,
) -> None:
    store = partitioned[partitions]
    before = {p: store.last_position(p) for p in range(partitions)}
    plans = _fresh_ids(plans)
    run, procs = _start_writers(redis_url, store.namespace, plans)
    acknowledged: list[tuple[str, str, int]] = []
    try:
        _release_when_ready(store, run, len(procs))
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            acknowledged += [tuple(item) for item in json.loads(out)]
    finally:
        for proc in procs:  # a failed example must not leave writers behind
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert len(acknowledged) == sum(len(plan) for plan in plans)
    _check_history(store, acknowledged, before)
