"""The fast read paths: long loads past the script's inline tail, and XREAD fetches of
pointers that are sparse, out of order or dangling."""

from __future__ import annotations

import pytest
import redis

from eventstore import EventStore, Repository, StoredDataError
from eventstore._core.log import Pointer, fetch_call
from eventstore._redis.batch import send_batch
from tests.domain import Account, Deposited, Opened

pytestmark = pytest.mark.both_fronts


def _account_with(store: EventStore, deposits: int, account_id: str = "acc-1") -> None:
    events = [Opened(owner="ann"), *[Deposited(amount=1) for _ in range(deposits)]]
    store.append("Account", account_id, events, 0)


def test_a_tail_longer_than_the_inline_part_is_read_whole(store: EventStore) -> None:
    _account_with(store, 299)  # 300 events: 256 come through the script, 44 by XRANGE
    accounts = Repository(store, Account)
    account = accounts.get("acc-1")
    assert (account.version, account.balance) == (300, 299)
    older = accounts.get("acc-1", version=270)
    assert (older.version, older.balance) == (270, 269)
    loaded = store.load("Account", "acc-1")
    assert [event.version for event in loaded.events] == list(range(1, 301))


def test_resolve_takes_pointers_in_any_order_and_far_apart(store: EventStore) -> None:
    _account_with(store, 99)
    _account_with(store, 9, "acc-2")
    page = store.read_log(0, limit=1000)
    by_key = {(e.aggregate_id, e.version): e for e in page.events}
    log_length = store.client.xlen(store.keys.log(0))
    pointers = {
        (e.aggregate_id, e.version): Pointer(
            0,
            e.position,
            store.keys.stream("Account", e.aggregate_id),
            e.version,
            e.event_type,
            "Account",
            e.aggregate_id,
        )
        for e in page.events
    }
    assert log_length == len(pointers) == 110
    wanted = [("acc-1", 90), ("acc-2", 3), ("acc-1", 2), ("acc-1", 50), ("acc-2", 4)]
    resolved = store.resolve([pointers[key] for key in wanted])
    assert [(e.aggregate_id, e.version) for e in resolved] == wanted
    assert [e.event for e in resolved] == [by_key[key].event for key in wanted]


def test_far_apart_versions_are_separate_reads() -> None:
    pointers = [Pointer(0, v, "{es:p0}:a:T:x", v, "E", "T", "x") for v in (1, 2, 100)]
    call = fetch_call(pointers)
    # 1..2 and 100 are two reads of one stream: two commands, each naming it once
    assert sorted(c[2] for c in call.commands) == [1, 2]


def test_a_dangling_pointer_is_named(store: EventStore) -> None:
    _account_with(store, 1)
    ghost = Pointer(0, 9, store.keys.stream("Account", "acc-1"), 7, "Deposited", "Account", "acc-1")
    with pytest.raises(StoredDataError) as info:
        store.resolve([ghost])
    assert (info.value.stream, info.value.version, info.value.field) == (ghost.stream, 7, "id")


def test_a_snapshot_older_than_the_window_gets_the_events_between(store: EventStore) -> None:
    accounts = Repository(store, Account, snapshot_every=5)
    account = Account(id="acc-1")
    account.open("ann")
    for _ in range(4):
        account.deposit(1)
    accounts.save(account)  # snapshot at 5
    for _ in range(95):
        account.deposit(1)
    Repository(store, Account).save(account)  # 100 events, no newer snapshot
    loaded = store.load("Account", "acc-1", fingerprint=Account.schema_fingerprint(), window=37)
    assert loaded.snapshot is not None
    assert loaded.snapshot.version == 5
    assert [e.version for e in loaded.events] == list(range(6, 101))
    assert accounts.get("acc-1").balance == 99


@pytest.mark.sync_front  # works on the sync client's own connections
def test_an_error_reply_in_a_batch_raises_and_leaves_the_connection_clean(
    store: EventStore,
) -> None:
    client = store.client
    client.hset("h", "f", "v")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        send_batch(client, [("SET", "k", "1"), ("XLEN", "h"), ("GET", "k")])
    assert send_batch(client, [("GET", "k"), ("HGET", "h", "f")]) == [b"1", b"v"]
