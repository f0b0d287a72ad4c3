"""Crash test: a server on ``appendfsync always`` is SIGKILLed 20 times at random moments
while writers append concurrently; after each restart (AOF reload) every acknowledged
event is there as acknowledged, nothing is half-written, versions and positions are
gap-free, and ``eventstore verify`` finds no problem.

Writers: two own their aggregates (exact expected versions from memory, snapshots every
3 versions), two contend on shared aggregates (reload, exact expected version, retry on
``ConcurrencyError``). An append whose outcome is unknown (the server died under it) is
re-sent with the same event ids until it is acknowledged: the idempotent retry.
"""

from __future__ import annotations

import functools
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import attrs
import pytest
import redis

from aggregates import DomainEvent
from eventstore import (
    AggregateNotFound,
    ConcurrencyError,
    EventStore,
    RecordedEvent,
    Repository,
)
from eventstore._redis.embedded import embedded_binary
from eventstore.cli._domain import Domain
from eventstore.cli._verify import verify_namespace
from eventstore.testing import RedisServer
from tests.domain import Account

KILLS = 20
SEED = 20240611
NAMESPACE = "crash"
PARTITIONS = 3
SHARED = ("shared-1", "shared-2")
T = TypeVar("T")
DOWN = (redis.ConnectionError, redis.TimeoutError)  # BusyLoadingError is a ConnectionError


@attrs.frozen
class Batch:
    """One save a writer attempted; ``acked`` holds what the store answered, if it did."""

    aggregate_id: str
    event_ids: tuple[str, ...]
    events: tuple[DomainEvent, ...]
    first_version: int = 0
    positions: tuple[int, ...] = ()


class Writer(threading.Thread):
    """Appends until stopped; parks between saves while the test verifies."""

    def __init__(self, url: str, name: str, ids: tuple[str, ...], *, shared: bool) -> None:
        super().__init__(name=name, daemon=True)
        self.url, self.ids, self.shared = url, ids, shared
        self.rng = random.Random(f"{SEED}-{name}")
        self.attempted: list[Batch] = []
        self.acked: list[Batch] = []
        self.error: BaseException | None = None
        self.parked = threading.Event()
        self.in_memory: dict[str, Account] = {}
        self.interrupted = 0  # saves a kill cut off (outcome unknown, re-sent)

    def run(self) -> None:
        try:
            with EventStore.from_url(self.url, namespace=NAMESPACE) as store:
                accounts = Repository(store, Account, snapshot_every=3)
                while not STOP.is_set():
                    self._park()
                    self._one_save(accounts)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def _park(self) -> None:
        while PAUSE.is_set() and not STOP.is_set():
            self.parked.set()
            time.sleep(0.005)
        self.parked.clear()

    def _one_save(self, accounts: Repository[Account]) -> None:
        aggregate_id = self.rng.choice(self.ids)
        while True:
            account = self._current(accounts, aggregate_id)
            for _ in range(self.rng.randint(1, 3)):
                account.deposit(self.rng.randint(1, 1000))
            batch = Batch(
                aggregate_id, tuple(account.pending_event_ids), tuple(account.pending_events)
            )
            self.attempted.append(batch)
            try:
                result = self._save(accounts, account)
            except ConcurrencyError:
                assert self.shared, f"{aggregate_id}: only this writer writes it"
                self.in_memory.pop(aggregate_id, None)
                continue  # reload and decide again, with new event ids
            assert result is not None
            self.acked.append(
                attrs.evolve(batch, first_version=result.first_version, positions=result.positions)
            )
            return

    def _save(self, accounts: Repository[Account], account: Account) -> Any:
        try:
            return accounts.save(account)
        except DOWN:  # the outcome is unknown: re-send the same events until answered
            self.interrupted += 1
            return _until_answered(functools.partial(accounts.save, account))

    def _current(self, accounts: Repository[Account], aggregate_id: str) -> Account:
        if not self.shared and aggregate_id in self.in_memory:
            return self.in_memory[aggregate_id]  # the sole writer knows its version
        try:
            account = _until_answered(lambda: accounts.get(aggregate_id))
        except AggregateNotFound:
            account = Account(id=aggregate_id)
            account.open(self.name)
        self.in_memory[aggregate_id] = account
        return account


def _until_answered(fn: Callable[[], T]) -> T:
    for _ in range(2000):
        try:
            return fn()
        except DOWN:
            time.sleep(0.01)
    raise AssertionError("the server did not come back")


STOP = threading.Event()
PAUSE = threading.Event()


@pytest.fixture(params=["redis-server", "embedded"])
def crash_server(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    binary: str | Path = request.param if request.param == "redis-server" else embedded_binary()
    server = RedisServer(binary, config={"appendonly": "yes", "appendfsync": "always"})
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.mark.slow
def test_acknowledged_appends_survive_sigkill_whole_and_gap_free(
    crash_server: RedisServer,
) -> None:
    rng = random.Random(SEED)
    EventStore.from_url(crash_server.url, namespace=NAMESPACE, partitions=PARTITIONS).close()
    writers = [
        Writer(crash_server.url, "own-a", ("a-1", "a-2", "a-3"), shared=False),
        Writer(crash_server.url, "own-b", ("b-1", "b-2", "b-3"), shared=False),
        Writer(crash_server.url, "shared-x", SHARED, shared=True),
        Writer(crash_server.url, "shared-y", SHARED, shared=True),
    ]
    STOP.clear()
    PAUSE.clear()
    for writer in writers:
        writer.start()
    try:
        for kill in range(KILLS):
            time.sleep(rng.uniform(0.02, 0.25))  # the random moment
            crash_server.restart(kill=True)  # SIGKILL, then reload the AOF
            PAUSE.set()
            for writer in writers:
                assert writer.parked.wait(30) or writer.error, f"{writer.name} never parked"
            _assert_no_writer_failed(writers)
            _verify(crash_server.url, writers, f"after kill {kill + 1} (seed {SEED})")
            PAUSE.clear()
    finally:
        STOP.set()
        PAUSE.clear()
        for writer in writers:
            writer.join(30)
    _assert_no_writer_failed(writers)
    assert sum(len(w.acked) for w in writers) > KILLS  # the writers did work between kills
    assert sum(w.interrupted for w in writers) >= KILLS // 2  # kills hit writers mid-save


def _assert_no_writer_failed(writers: list[Writer]) -> None:
    for writer in writers:
        if writer.error is not None:
            raise AssertionError(f"writer {writer.name} failed") from writer.error


def _verify(url: str, writers: list[Writer], when: str) -> None:
    with EventStore.from_url(url, namespace=NAMESPACE) as store:
        streams = {
            aggregate_id: store.read("Account", aggregate_id)
            for writer in writers
            for aggregate_id in writer.ids
        }
        for aggregate_id, events in streams.items():  # versions gap-free from 1
            versions = [e.version for e in events]
            assert versions == list(range(1, len(events) + 1)), f"{aggregate_id} {when}"
        present = {e.event_id: e for events in streams.values() for e in events}
        for writer in writers:
            for batch in writer.acked:  # every acknowledged event, exactly as acknowledged
                for offset, event_id in enumerate(batch.event_ids):
                    stored = present.get(event_id)
                    assert stored is not None, f"acknowledged {event_id} lost {when}"
                    assert stored.version == batch.first_version + offset
                    assert stored.position == batch.positions[offset]
                    assert stored.event == batch.events[offset]
            for batch in writer.attempted:  # acknowledged or not: all of a batch or none
                there = [event_id in present for event_id in batch.event_ids]
                assert all(there) or not any(there), f"half-written {batch} {when}"
        _verify_partitions(store, present, when)
        report = verify_namespace(store, Domain(aggregates={"Account": Account}))
        assert report.problems == [], f"verify {when}"


def _verify_partitions(store: EventStore, present: dict[str, RecordedEvent], when: str) -> None:
    logged = 0
    for partition in range(store.partitions):
        events = [e for page in _pages(store, partition) for e in page]
        positions = [e.position for e in events]
        assert positions == list(range(1, len(events) + 1)), f"partition {partition} {when}"
        assert store.last_position(partition) == len(events), f"counter {partition} {when}"
        logged += len(events)
    assert logged == len(present), f"log and streams disagree {when}"


def _pages(store: EventStore, partition: int) -> Iterator[tuple[RecordedEvent, ...]]:
    after = 0
    while True:
        page = store.read_log(partition, after, limit=500)
        if not page.scanned:
            return
        yield page.events
        after = page.last_position
