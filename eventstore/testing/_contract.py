"""A contract test suite for event stores: subclass it once per backend or configuration.

::

    import pytest
    from eventstore.testing import EventStoreContract

    class TestMyStore(EventStoreContract):
        @pytest.fixture
        def store(self):
            with EventStore.from_url(URL, namespace="contract") as store:
                yield store

Every test takes the ``store`` fixture and starts from an empty namespace. The suite
states what any configuration must keep: atomic, ordered, idempotent appends, exact
expected-version checks, gap-free positions, and snapshot + tail loads.
"""

from __future__ import annotations

import threading
from typing import ClassVar

import pytest

from aggregates import DomainEvent
from eventstore._core.errors import ConcurrencyError, InvalidEvent
from eventstore._core.expected import ExpectedVersion
from eventstore._core.records import NewEvent, Snapshot
from eventstore._redis.store import EventStore

__all__ = ["ContractEvent", "EventStoreContract"]


class ContractEvent(DomainEvent):
    """The event the contract suite writes."""

    event_type = "eventstore.testing.ContractEvent"
    n: int


def _events(*numbers: int) -> list[ContractEvent]:
    return [ContractEvent(n=n) for n in numbers]


class EventStoreContract:
    """Tests every event store configuration must pass (needs a ``store`` fixture)."""

    aggregate_type: ClassVar[str] = "ContractAggregate"

    def test_appended_events_read_back_in_order(self, store: EventStore) -> None:
        store.append(self.aggregate_type, "c1", _events(1, 2), 0)
        store.append(self.aggregate_type, "c1", _events(3), 2)
        read = store.read(self.aggregate_type, "c1")
        assert [r.event for r in read] == _events(1, 2, 3)
        assert [r.version for r in read] == [1, 2, 3]
        assert [r.position for r in read] == sorted(r.position for r in read)

    def test_wrong_expected_version_writes_nothing(self, store: EventStore) -> None:
        store.append(self.aggregate_type, "c1", _events(1), ExpectedVersion.NO_STREAM)
        for expected in (0, 2, ExpectedVersion.NO_STREAM):
            with pytest.raises(ConcurrencyError) as info:
                store.append(self.aggregate_type, "c1", _events(9), expected)
            assert info.value.actual_version == 1
        assert [r.event for r in store.read(self.aggregate_type, "c1")] == _events(1)

    def test_resent_batch_is_recognised(self, store: EventStore) -> None:
        first = store.append(self.aggregate_type, "c1", _events(1, 2), 0, event_ids=["x", "y"])
        again = store.append(self.aggregate_type, "c1", _events(1, 2), 0, event_ids=["x", "y"])
        assert again.duplicate
        assert again.positions == first.positions
        assert len(store.read(self.aggregate_type, "c1")) == 2

    def test_invalid_batch_writes_nothing(self, store: EventStore) -> None:
        good = NewEvent("e1", ContractEvent.event_type, 1, 0, '{"n": 1}')
        bad = NewEvent("e2", ContractEvent.event_type, 1, 0, "[1, 2]")
        with pytest.raises(InvalidEvent):
            store.append_encoded(self.aggregate_type, "c1", [good, bad], 0)
        assert store.read(self.aggregate_type, "c1") == []

    def test_log_positions_are_gap_free(self, store: EventStore) -> None:
        for i in range(6):
            store.append(self.aggregate_type, f"c{i}", _events(i, i), 0)
        positions = []
        for partition in range(store.partitions):
            page = store.read_log(partition)
            positions.append([r.position for r in page.events])
        assert all(p == list(range(1, len(p) + 1)) for p in positions)
        assert sum(len(p) for p in positions) == 12

    def test_load_is_snapshot_plus_tail(self, store: EventStore) -> None:
        store.append(self.aggregate_type, "c1", _events(1, 2, 3, 4), 0)
        store.write_snapshot(self.aggregate_type, "c1", Snapshot(2, "fp", {"sum": 3}))
        loaded = store.load(self.aggregate_type, "c1", fingerprint="fp")
        assert loaded.snapshot is not None
        assert loaded.snapshot.version == 2
        assert [r.version for r in loaded.events] == [3, 4]
        other_shape = store.load(self.aggregate_type, "c1", fingerprint="other")
        assert other_shape.snapshot is None
        assert [r.version for r in other_shape.events] == [1, 2, 3, 4]

    def test_concurrent_writers_never_lose_or_duplicate(self, store: EventStore) -> None:
        def writer(name: str) -> None:
            for n in range(10):
                while True:
                    version = store.version_of(self.aggregate_type, "shared")
                    try:
                        store.append(
                            self.aggregate_type,
                            "shared",
                            _events(n),
                            version,
                            metadata={"writer": name},
                        )
                        break
                    except ConcurrencyError:
                        continue

        threads = [threading.Thread(target=writer, args=(f"w{i}",)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        read = store.read(self.aggregate_type, "shared")
        assert [r.version for r in read] == list(range(1, 41))
        by_writer = {
            w: [r.event.n for r in read if r.metadata["writer"] == w]  # type: ignore[attr-defined]
            for w in ("w0", "w1", "w2", "w3")
        }
        assert all(numbers == list(range(10)) for numbers in by_writer.values())
