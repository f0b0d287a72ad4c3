"""``read_all`` and ``Checkpoint``: every event after a checkpoint, filtered, in order."""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventstore import FROM_NOW, Checkpoint, EventStore, RecordedEvent
from tests.domain import Deposited, Opened, Withdrawn

positions = st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=16)


pytestmark = [pytest.mark.both_fronts, pytest.mark.all_servers]


@given(positions)
def test_checkpoint_round_trips_through_its_string(values: list[int]) -> None:
    checkpoint = Checkpoint(tuple(values))
    text = str(checkpoint)
    assert Checkpoint.parse(text) == checkpoint
    assert Checkpoint.coerce(text, len(values)) == checkpoint
    assert checkpoint.total == sum(values)


@given(positions, st.data())
def test_checkpoint_advance_never_moves_back(values: list[int], data: st.DataObject) -> None:
    checkpoint = Checkpoint(tuple(values))
    partition = data.draw(st.integers(0, len(values) - 1))
    target = data.draw(st.integers(0, 10**12))
    moved = checkpoint.advance(partition, target)
    assert moved.position(partition) == max(values[partition], target)
    others = [p for p in range(len(values)) if p != partition]
    assert [moved.position(p) for p in others] == [values[p] for p in others]


@pytest.mark.parametrize("text", ["", "a", "1,,2", "-1", "1;2", "1.5"])
def test_malformed_checkpoint_strings_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="checkpoint"):
        Checkpoint.parse(text)


def test_after_accepts_int_only_with_one_partition() -> None:
    assert Checkpoint.coerce(7, 1) == Checkpoint((7,))
    assert Checkpoint.coerce(None, 3) == Checkpoint((0, 0, 0))
    with pytest.raises(ValueError, match="3 partitions"):
        Checkpoint.coerce(7, 3)
    with pytest.raises(ValueError, match="has 2 partitions"):
        Checkpoint.coerce("1,2", 3)
    with pytest.raises(TypeError):
        Checkpoint.coerce(True, 1)
    with pytest.raises(ValueError, match="position"):
        Checkpoint((1, -1))


def _fill(store: EventStore, aggregates: int = 6) -> None:
    for i in range(aggregates):
        store.append("Account", f"acc-{i}", [Opened(owner=f"o{i}"), Deposited(amount=i + 1)], 0)
        store.append("Wallet", f"w-{i}", [Deposited(amount=10 * i), Withdrawn(amount=1)], 0)


def _in_order(events: list[RecordedEvent]) -> dict[int, list[int]]:
    by_partition: dict[int, list[int]] = defaultdict(list)
    for recorded in events:
        by_partition[recorded.partition].append(recorded.position)
    return by_partition


def test_read_all_from_the_beginning_and_after(store: EventStore) -> None:
    _fill(store)
    events = list(store.read_all())
    assert [e.position for e in events] == list(range(1, 25))
    assert events[0].event == Opened(owner="o0")
    assert [e.position for e in store.read_all(after=20)] == [21, 22, 23, 24]
    assert [e.position for e in store.read_all(after="22")] == [23, 24]
    assert list(store.read_all(after=FROM_NOW)) == []


def test_read_all_filters_and_limit(store: EventStore) -> None:
    _fill(store)
    deposits = list(store.read_all(event_types=["Deposited"]))
    assert len(deposits) == 12
    assert all(isinstance(e.event, Deposited) for e in deposits)
    wallets = list(store.read_all(aggregate_types={"Wallet"}, event_types={"Withdrawn"}))
    assert [(e.aggregate_type, e.event_type) for e in wallets] == [("Wallet", "Withdrawn")] * 6
    assert [e.position for e in store.read_all(limit=3)] == [1, 2, 3]
    assert list(store.read_all(event_types=["NoSuchType"])) == []


def test_read_all_pages_through_many_partitions(redis_url: str, namespace: str) -> None:
    with EventStore.from_url(redis_url, namespace=namespace, partitions=4) as store:
        _fill(store, aggregates=20)
        events = list(store.read_all(page_size=3))
        assert len(events) == 80
        assert len({e.event_id for e in events}) == 80
        for partition, seen in _in_order(events).items():
            assert seen == list(range(1, store.last_position(partition) + 1))
        head = store.head()
        assert head.total == 80
        assert list(store.read_all(after=head)) == []
        assert list(store.read_all(after=str(head))) == []
        with pytest.raises(ValueError, match="4 partitions"):
            list(store.read_all(after=3))
