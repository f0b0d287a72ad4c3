"""eventstore.testing.assert_replay_consistent: holds for honest data, fails for a lie."""

from __future__ import annotations

import pytest

from eventstore import EventStore, Repository, Snapshot
from eventstore.testing import assert_replay_consistent
from tests.domain import Account


def _account(store: EventStore) -> Repository[Account]:
    accounts = Repository(store, Account, snapshot_every=2)
    account = Account(id="law-1")
    account.open("ann")
    for amount in (5, 7, 11):
        account.deposit(amount)
    accounts.save(account)
    return accounts


def test_holds_for_data_written_through_the_repository(store: EventStore) -> None:
    loaded = assert_replay_consistent(_account(store), "law-1")
    assert (loaded.balance, loaded.version) == (23, 4)


def test_fails_when_a_snapshot_disagrees_with_the_events(store: EventStore) -> None:
    accounts = _account(store)
    store.drop_snapshot("Account", "law-1")
    lie = {"owner": "ann", "balance": 1_000, "tags": []}
    store.write_snapshot("Account", "law-1", Snapshot(4, Account.schema_fingerprint(), lie))
    with pytest.raises(AssertionError, match="snapshot \\+ tail gives"):
        assert_replay_consistent(accounts, "law-1")
