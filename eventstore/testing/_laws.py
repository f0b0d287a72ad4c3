"""Checks for your own (property-based) tests of aggregates stored with a Repository."""

from __future__ import annotations

from typing import TypeVar

from aggregates import Aggregate
from eventstore._redis.repository import Repository

__all__ = ["assert_replay_consistent"]

A = TypeVar("A", bound=Aggregate)


def assert_replay_consistent(repository: Repository[A], aggregate_id: str) -> A:
    """Assert the laws that make a stored aggregate trustworthy, and return it.

    - loading with the snapshot equals a full replay (same state, same version);
    - every past version loads, and replaying to it equals folding the events one by one;
    - a snapshot, if any, is never ahead of the stream.

    ::

        @given(st.lists(amounts))
        def test_accounts_replay(amounts):
            account = Account()
            for amount in amounts:
                account.deposit(amount)
            accounts.save(account)
            assert_replay_consistent(accounts, account.id)
    """
    latest = repository.get(aggregate_id)
    full = repository.get(aggregate_id, use_snapshot=False)
    _same(latest, full, "snapshot + tail", "full replay")
    snapshot = repository.store.read_snapshot(repository.aggregate_type, aggregate_id)
    if snapshot is not None:
        assert snapshot.version <= latest.version, (
            f"snapshot of {aggregate_id} at version {snapshot.version} is ahead of the "
            f"stream (version {latest.version})"
        )
    folded = repository.aggregate_class(id=aggregate_id)
    for recorded in repository.store.read(repository.aggregate_type, aggregate_id):
        folded.apply(recorded.event)
        at_version = repository.get(aggregate_id, version=recorded.version)
        _same(at_version, folded, f"get(version={recorded.version})", "events folded one by one")
    return latest


def _same(left: Aggregate, right: Aggregate, left_name: str, right_name: str) -> None:
    assert left.version == right.version, (
        f"{left.aggregate_type} {left.id}: {left_name} is at version {left.version}, "
        f"{right_name} at {right.version}"
    )
    assert left.state_as_json() == right.state_as_json(), (
        f"{left.aggregate_type} {left.id} at version {left.version}: {left_name} gives "
        f"{left.state_as_json()}, {right_name} gives {right.state_as_json()}"
    )
