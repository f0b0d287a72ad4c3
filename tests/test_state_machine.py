"""The store held against a small in-memory model by a hypothesis state machine.

Appends with right and wrong expected versions (int, ANY, NO_STREAM, EXISTS), idempotent
re-sends, re-sends with other ids, invalid batches, loads at any version with or without
a snapshot, snapshots written inside appends and outside them, on 1 and 3 partitions.
"""

from __future__ import annotations

import uuid
from typing import Any

import attrs
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from eventstore import (
    ConcurrencyError,
    ExpectedVersion,
    InvalidEvent,
    NewEvent,
    Snapshot,
)
from tests.domain import Deposited
from tests.fronts import FRONTS, Front, open_store
from tests.strategies import amounts

IDS = ("ann", "bob", "lu", "cy")  # with 3 partitions: 0, 2, 1, 2 (two share one)
FINGERPRINTS = ("shape-a", "shape-b")
KINDS = ("right", "wrong", "any", "none", "exists")


@attrs.frozen
class Stored:
    """One event as the model remembers it."""

    event_id: str
    amount: int
    position: int


@attrs.frozen
class Sent:
    """A batch the store accepted, as its writer would re-send it after a lost reply."""

    aggregate_id: str
    event_ids: tuple[str, ...]
    amounts: tuple[int, ...]
    expected: int | ExpectedVersion
    first_version: int
    positions: tuple[int, ...]


@attrs.frozen
class ModelSnapshot:
    version: int
    fingerprint: str
    state: dict[str, Any]


def _expectation(kind: str, current: int, delta: int) -> tuple[int | ExpectedVersion, bool]:
    """The expected version to send for ``kind`` and whether the store must accept it."""
    if kind == "right":
        return current, True
    if kind == "wrong":
        return (current + delta if current < delta or delta % 2 else current - delta), False
    if kind == "any":
        return ExpectedVersion.ANY, True
    if kind == "none":
        return ExpectedVersion.NO_STREAM, current == 0
    return ExpectedVersion.EXISTS, current > 0


class StoreMachine(RuleBasedStateMachine):
    """Every rule predicts the store's answer from the model, then checks it."""

    def __init__(self, url: str, partitions: int, front: Front = "sync") -> None:
        super().__init__()
        namespace = f"sm{uuid.uuid4().hex[:10]}"
        self.store = open_store(front, url, namespace=namespace, partitions=partitions)
        self.events: dict[str, list[Stored]] = {aggregate_id: [] for aggregate_id in IDS}
        self.last_position = dict.fromkeys(range(partitions), 0)
        self.sent: list[Sent] = []
        self.snapshots: dict[str, ModelSnapshot] = {}

    def teardown(self) -> None:
        self.store.close()

    # -- model helpers --------------------------------------------------------------------

    def _partition(self, aggregate_id: str) -> int:
        return self.store.keys.partition_of(aggregate_id)

    def _record(self, aggregate_id: str, ids: tuple[str, ...], values: tuple[int, ...]) -> None:
        partition = self._partition(aggregate_id)
        for event_id, amount in zip(ids, values, strict=True):
            self.last_position[partition] += 1
            stored = Stored(event_id, amount, self.last_position[partition])
            self.events[aggregate_id].append(stored)

    def _snapshot_in_append(self, aggregate_id: str, snapshot: Snapshot) -> None:
        # append.lua keeps the newer snapshot, whatever the shape of the stored one
        existing = self.snapshots.get(aggregate_id)
        if existing is None or snapshot.version > existing.version:
            self.snapshots[aggregate_id] = ModelSnapshot(
                snapshot.version, snapshot.fingerprint, dict(snapshot.state)
            )

    # -- rules ----------------------------------------------------------------------------

    @rule(
        aggregate_id=st.sampled_from(IDS),
        values=st.lists(amounts, min_size=1, max_size=3),
        kind=st.sampled_from(KINDS),
        delta=st.integers(min_value=1, max_value=3),
        snapshot_fingerprint=st.none() | st.sampled_from(FINGERPRINTS),
    )
    def append(
        self,
        aggregate_id: str,
        values: list[int],
        kind: str,
        delta: int,
        snapshot_fingerprint: str | None,
    ) -> None:
        current = len(self.events[aggregate_id])
        expected, accepted = _expectation(kind, current, delta)
        ids = tuple(str(uuid.uuid4()) for _ in values)
        new_version = current + len(values)
        snapshot = None
        if snapshot_fingerprint is not None:
            snapshot = Snapshot(new_version, snapshot_fingerprint, {"sum": sum(values)}, 1)
        events = [Deposited(amount=value) for value in values]
        partition = self._partition(aggregate_id)
        if not accepted:
            with pytest.raises(ConcurrencyError) as info:
                self.store.append(
                    "Acct", aggregate_id, events, expected, event_ids=ids, snapshot=snapshot
                )
            assert info.value.actual_version == current
            return
        result = self.store.append(
            "Acct", aggregate_id, events, expected, event_ids=ids, snapshot=snapshot
        )
        first_position = self.last_position[partition] + 1
        assert (result.first_version, result.duplicate, result.partition) == (
            current + 1,
            False,
            partition,
        )
        assert result.positions == tuple(range(first_position, first_position + len(values)))
        self._record(aggregate_id, ids, tuple(values))
        self.sent.append(
            Sent(aggregate_id, ids, tuple(values), expected, current + 1, result.positions)
        )
        if snapshot is not None:
            self._snapshot_in_append(aggregate_id, snapshot)

    @rule(data=st.data())
    def resend(self, data: st.DataObject) -> None:
        if not self.sent:
            return
        batch = data.draw(st.sampled_from(self.sent), label="batch re-sent")
        stream = [e.event_id for e in self.events[batch.aggregate_id]]
        at_tail = stream[-len(batch.event_ids) :] == list(batch.event_ids)
        if batch.expected in (ExpectedVersion.ANY, ExpectedVersion.EXISTS) and not at_tail:
            # with ANY / EXISTS the store can only recognise a batch still at the tail
            return
        result = self.store.append(
            "Acct",
            batch.aggregate_id,
            [Deposited(amount=value) for value in batch.amounts],
            batch.expected,
            event_ids=batch.event_ids,
        )
        assert result.duplicate
        assert (result.first_version, result.positions) == (batch.first_version, batch.positions)

    @rule(data=st.data(), changed=st.integers(min_value=0, max_value=2))
    def resend_with_other_ids(self, data: st.DataObject, changed: int) -> None:
        exact = [b for b in self.sent if isinstance(b.expected, int)]
        if not exact:
            return
        batch = data.draw(st.sampled_from(exact), label="batch re-sent with other ids")
        changed = min(changed, len(batch.event_ids) - 1)
        ids = list(batch.event_ids)
        ids[changed] = str(uuid.uuid4())
        with pytest.raises(ConcurrencyError) as info:
            self.store.append(
                "Acct",
                batch.aggregate_id,
                [Deposited(amount=value) for value in batch.amounts],
                batch.expected,
                event_ids=ids,
            )
        assert info.value.expected_version == batch.expected
        assert info.value.actual_version == len(self.events[batch.aggregate_id])
        assert info.value.conflicting_version == batch.first_version + changed

    @rule(aggregate_id=st.sampled_from(IDS), bad_index=st.integers(min_value=0, max_value=2))
    def invalid_batch(self, aggregate_id: str, bad_index: int) -> None:
        batch = [NewEvent(str(uuid.uuid4()), "Deposited", 1, 1, '{"amount":1}') for _ in range(3)]
        batch[bad_index] = attrs.evolve(batch[bad_index], data="{broken")
        with pytest.raises(InvalidEvent) as info:
            self.store.append_encoded("Acct", aggregate_id, batch, ExpectedVersion.ANY)
        assert (info.value.index, info.value.field) == (bad_index + 1, "data")

    @rule(
        aggregate_id=st.sampled_from(IDS),
        fingerprint=st.sampled_from(FINGERPRINTS),
        back=st.integers(min_value=-1, max_value=4),
    )
    def write_snapshot(self, aggregate_id: str, fingerprint: str, back: int) -> None:
        current = len(self.events[aggregate_id])
        version = current - back  # back == -1: beyond the stream
        if version < 1:
            return
        snapshot = Snapshot(version, fingerprint, {"v": version, "f": fingerprint}, 1)
        if version > current:
            with pytest.raises(InvalidEvent):
                self.store.write_snapshot("Acct", aggregate_id, snapshot)
            return
        existing = self.snapshots.get(aggregate_id)
        should_write = (
            existing is None or existing.fingerprint != fingerprint or version > existing.version
        )
        assert self.store.write_snapshot("Acct", aggregate_id, snapshot) == should_write
        if should_write:
            self.snapshots[aggregate_id] = ModelSnapshot(version, fingerprint, dict(snapshot.state))

    @rule(
        aggregate_id=st.sampled_from(IDS),
        fingerprint=st.sampled_from(("", *FINGERPRINTS)),
        upto=st.integers(min_value=0, max_value=12),
    )
    def load(self, aggregate_id: str, fingerprint: str, upto: int) -> None:
        stored = self.events[aggregate_id]
        loaded = self.store.load("Acct", aggregate_id, fingerprint=fingerprint, version=upto)
        assert loaded.current_version == len(stored)
        last = len(stored) if upto == 0 else min(upto, len(stored))
        snapshot = self.snapshots.get(aggregate_id)
        usable = (
            snapshot is not None
            and fingerprint == snapshot.fingerprint
            and snapshot.version <= last
        )
        start = snapshot.version if usable and snapshot else 0
        if usable and snapshot:
            assert loaded.snapshot is not None
            assert (loaded.snapshot.version, dict(loaded.snapshot.state)) == (
                snapshot.version,
                snapshot.state,
            )
        else:
            assert loaded.snapshot is None
        expected = [
            (version, e.event_id, e.amount, e.position)
            for version, e in enumerate(stored[start:last], start=start + 1)
        ]
        got = [(r.version, r.event_id, r.event.amount, r.position) for r in loaded.events]  # type: ignore[attr-defined]
        assert got == expected

    @rule(partition_choice=st.integers(min_value=0, max_value=2), after=st.integers(0, 5))
    def read_log(self, partition_choice: int, after: int) -> None:
        partition = partition_choice % len(self.last_position)
        page = self.store.read_log(partition, after)
        expected = sorted(
            (e.position, aggregate_id, version, e.event_id)
            for aggregate_id, stored in self.events.items()
            if self._partition(aggregate_id) == partition
            for version, e in enumerate(stored, start=1)
            if e.position > after
        )
        got = [(r.position, r.aggregate_id, r.version, r.event_id) for r in page.events]
        assert got == expected

    # -- invariants -----------------------------------------------------------------------

    @invariant()
    def versions_and_positions_match(self) -> None:
        for partition, last in self.last_position.items():
            assert self.store.last_position(partition) == last
        for aggregate_id, stored in self.events.items():
            assert self.store.version_of("Acct", aggregate_id) == len(stored)

    @invariant()
    def snapshots_match(self) -> None:
        for aggregate_id in IDS:
            stored = self.store.read_snapshot("Acct", aggregate_id)
            model = self.snapshots.get(aggregate_id)
            if model is None:
                assert stored is None
                continue
            assert stored is not None
            assert (stored.version, stored.fingerprint, dict(stored.state)) == (
                model.version,
                model.fingerprint,
                model.state,
            )


@pytest.mark.parametrize("front", FRONTS)
@pytest.mark.parametrize("partitions", [1, 3])
def test_store_behaves_like_the_model(redis_url: str, partitions: int, front: Front) -> None:
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(
        # a factory is documented and works; the stub only admits the class
        lambda: StoreMachine(redis_url, partitions, front),  # type: ignore[arg-type]
        settings=settings(stateful_step_count=50),
    )
