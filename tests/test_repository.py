"""Repository: save and get, past versions, conflicts, snapshots, round trips, lost replies."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable
from contextlib import closing
from typing import Any

import pytest
import redis

from aggregates import Aggregate
from eventstore import (
    AggregateNotFound,
    AppendResult,
    ConcurrencyError,
    EventStore,
    InvalidEvent,
    NewEvent,
    Snapshot,
)
from eventstore._async.store import AsyncEventStore
from eventstore._redis.store import EventStore as _StoreClass
from tests.domain import Account, Deposited, Tagged
from tests.fronts import Front, repository

pytestmark = pytest.mark.both_fronts


class AccountWithLimit(Account):
    """Another shape of Account: same stored name, one more state field."""

    aggregate_type = "Account"
    limit: int = 100


def _opened(amounts: list[int], account_id: str = "acc-1") -> Account:
    account = Account(id=account_id)
    account.open("ann")
    for amount in amounts:
        account.deposit(amount)
    return account


def commands_sent(store: EventStore, action: Callable[[], object]) -> list[str]:
    """The commands clients sent while ``action`` ran (MONITOR; script internals left out)."""
    kwargs = store.client.connection_pool.connection_kwargs
    url = f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"
    marker = f"ECHO end-{uuid.uuid4().hex}"
    with closing(redis.Redis.from_url(url)) as watcher, closing(redis.Redis.from_url(url)) as other:
        other.ping()  # its connection set-up must happen before MONITOR starts
        with watcher.monitor() as monitor:  # type: ignore[no-untyped-call]
            action()
            other.echo(marker.split(" ")[1])
            sent = []
            while (command := monitor.next_command())["command"] != marker:
                if command["client_type"] != "lua":
                    sent.append(str(command["command"]).split(" ")[0].upper())
    return sent


def test_save_then_get(store: EventStore) -> None:
    accounts = repository(store, Account)
    account = _opened([10, 5])
    result = accounts.save(account)
    assert isinstance(result, AppendResult)
    assert (result.first_version, result.positions) == (1, (1, 2, 3))
    assert (account.version, account.pending_events) == (3, ())
    loaded = accounts.get("acc-1")
    assert (loaded.id, loaded.version, loaded.owner, loaded.balance) == ("acc-1", 3, "ann", 15)
    assert accounts.save(loaded) is None  # nothing pending: nothing sent


def test_saves_continue_from_the_committed_version(store: EventStore) -> None:
    accounts = repository(store, Account)
    account = _opened([1])
    accounts.save(account)
    account.deposit(2)
    account.withdraw(3)
    result = accounts.save(account)
    assert result is not None
    assert (result.first_version, result.last_version) == (3, 4)
    assert accounts.get("acc-1").balance == 0


def test_get_at_a_past_version(store: EventStore) -> None:
    accounts = repository(store, Account, snapshot_every=2)
    account = _opened([])
    accounts.save(account)
    for amount in (1, 2, 4, 8):
        account.deposit(amount)
        accounts.save(account)
    balances = [accounts.get("acc-1", version=v).balance for v in range(1, 6)]
    assert balances == [0, 1, 3, 7, 15]
    assert [accounts.get("acc-1", version=v).version for v in range(1, 6)] == [1, 2, 3, 4, 5]


def test_missing_aggregate_and_missing_version(store: EventStore) -> None:
    accounts = repository(store, Account)
    with pytest.raises(AggregateNotFound) as missing:
        accounts.get("nobody")
    assert (missing.value.aggregate_type, missing.value.aggregate_id) == ("Account", "nobody")
    assert accounts.get_or_none("nobody") is None
    accounts.save(_opened([1]))
    with pytest.raises(AggregateNotFound) as beyond:
        accounts.get("acc-1", version=3)
    assert beyond.value.version == 3
    assert "version 3" in str(beyond.value)
    with pytest.raises(ValueError, match=">= 1"):
        accounts.get("acc-1", version=0)


def test_concurrent_save_raises_with_expected_and_actual(store: EventStore) -> None:
    accounts = repository(store, Account)
    accounts.save(_opened([1]))
    first, second = accounts.get("acc-1"), accounts.get("acc-1")
    first.deposit(5)
    first.deposit(6)
    accounts.save(first)
    second.deposit(7)
    with pytest.raises(ConcurrencyError) as info:
        accounts.save(second)
    assert (info.value.expected_version, info.value.actual_version) == (2, 4)
    assert "acc-1" in info.value.stream
    assert "expected version 2" in str(info.value)
    assert second.pending_events == (Deposited(amount=7),)  # kept: reload and retry
    retried = accounts.get("acc-1")
    retried.deposit(7)
    accounts.save(retried)
    assert accounts.get("acc-1").balance == 19


def test_creating_an_existing_aggregate_conflicts(store: EventStore) -> None:
    accounts = repository(store, Account)
    accounts.save(_opened([1]))
    with pytest.raises(ConcurrencyError) as info:
        accounts.save(_opened([2]))
    assert (info.value.expected_version, info.value.actual_version) == ("none", 2)


def test_saving_another_class_is_refused(store: EventStore) -> None:
    class Other(Aggregate):
        pass

    with pytest.raises(TypeError, match="saves Account"):
        repository(store, Account).save(Other())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="snapshot_every"):
        repository(store, Account, snapshot_every=0)


def test_snapshot_is_written_in_the_same_call_when_due(store: EventStore) -> None:
    accounts = repository(store, Account, snapshot_every=3)
    account = _opened([1])
    accounts.save(account)  # versions 1-2: no multiple of 3 crossed
    assert store.read_snapshot("Account", "acc-1") is None
    account.deposit(2)
    account.deposit(3)
    sent = commands_sent(store, lambda: accounts.save(account))  # versions 3-4: crosses 3
    assert sent == ["EVALSHA"]
    snapshot = store.read_snapshot("Account", "acc-1")
    assert snapshot is not None
    assert (snapshot.version, snapshot.fingerprint) == (4, Account.schema_fingerprint())
    assert snapshot.state == {"owner": "ann", "balance": 6, "tags": []}
    raw = store.client.hget(store.keys.snapshot("Account", "acc-1"), "s")
    assert isinstance(raw, bytes)
    assert json.loads(raw) == snapshot.state  # plain JSON in Redis, never pickle
    account.deposit(4)
    accounts.save(account)  # version 5: no multiple crossed, the snapshot stays at 4
    assert store.read_snapshot("Account", "acc-1").version == 4  # type: ignore[union-attr]
    loaded = store.load("Account", "acc-1", fingerprint=Account.schema_fingerprint())
    assert loaded.snapshot is not None
    assert loaded.snapshot.version == 4
    assert [e.version for e in loaded.events] == [5]
    assert accounts.get("acc-1").balance == 10


def test_get_is_one_round_trip(store: EventStore) -> None:
    accounts = repository(store, Account, snapshot_every=5)
    accounts.save(_opened(list(range(1, 12))))
    assert store.read_snapshot("Account", "acc-1") is not None
    with_snapshot = commands_sent(store, lambda: accounts.get("acc-1"))
    without = commands_sent(store, lambda: accounts.get("acc-1", use_snapshot=False))
    past = commands_sent(store, lambda: accounts.get("acc-1", version=3))
    # one pipeline each (one round trip): the snapshot when it may be used, the newest events
    assert with_snapshot == past == ["HMGET", "XREVRANGE"]
    assert without == ["XREVRANGE"]


def test_snapshot_of_another_shape_is_ignored(store: EventStore) -> None:
    limited = repository(store, AccountWithLimit, snapshot_every=1)
    account = AccountWithLimit(id="acc-1")
    account.open("ann")
    account.deposit(5)
    account.limit = 7  # state only the other shape has
    limited.save(account)
    snapshot = store.read_snapshot("Account", "acc-1")
    assert snapshot is not None
    assert snapshot.fingerprint == AccountWithLimit.schema_fingerprint()
    assert AccountWithLimit.schema_fingerprint() != Account.schema_fingerprint()
    loaded = store.load("Account", "acc-1", fingerprint=Account.schema_fingerprint())
    assert (loaded.snapshot, loaded.snapshot_skipped, len(loaded.events)) == (
        None,
        "fingerprint",
        2,
    )
    plain = repository(store, Account).get("acc-1")
    assert (plain.balance, plain.version) == (5, 2)


def test_planted_snapshot_with_other_fingerprint_is_not_loaded(store: EventStore) -> None:
    accounts = repository(store, Account)
    accounts.save(_opened([1, 2]))
    bogus = Snapshot(3, "0123456789abcdef", {"owner": "mallory", "balance": 10**9, "tags": []})
    assert store.write_snapshot("Account", "acc-1", bogus)
    loaded = accounts.get("acc-1")
    assert (loaded.owner, loaded.balance) == ("ann", 3)


def test_snapshot_newer_than_the_version_asked_is_not_used(store: EventStore) -> None:
    accounts = repository(store, Account, snapshot_every=2)
    accounts.save(_opened([1, 2, 3]))
    assert store.read_snapshot("Account", "acc-1").version == 4  # type: ignore[union-attr]
    loaded = store.load("Account", "acc-1", fingerprint=Account.schema_fingerprint(), version=2)
    assert (loaded.snapshot, loaded.snapshot_skipped) == (None, "newer")
    assert accounts.get("acc-1", version=2).balance == 1


def test_take_snapshot_outside_a_save(store: EventStore) -> None:
    accounts = repository(store, Account)
    accounts.save(_opened([4, 5]))
    taken = accounts.take_snapshot("acc-1")
    assert taken.version == 3
    assert taken.state["balance"] == 9
    loaded = store.load("Account", "acc-1", fingerprint=Account.schema_fingerprint())
    assert loaded.snapshot is not None
    assert loaded.events == ()
    assert accounts.get("acc-1").balance == 9


def test_metadata_is_readable_back(store: EventStore) -> None:
    accounts = repository(store, Account)
    account = _opened([3])
    ids, times = account.pending_event_ids, account.pending_event_times
    accounts.save(
        account,
        metadata={"user": "u-7", "nested": {"ok": True, "n": [1, 2]}},
        correlation_id="corr-1",
        causation_id="cmd-9",
    )
    recorded = store.read("Account", "acc-1")
    assert [r.event_id for r in recorded] == list(ids)
    assert [round(r.recorded_at.timestamp() * 1000) for r in recorded] == list(times)
    for r in recorded:
        assert r.metadata == {"user": "u-7", "nested": {"ok": True, "n": [1, 2]}}
        assert (r.correlation_id, r.causation_id) == ("corr-1", "cmd-9")
        assert (r.aggregate_type, r.aggregate_id) == ("Account", "acc-1")


def test_resave_after_a_lost_reply_writes_once(
    store: EventStore, monkeypatch: pytest.MonkeyPatch, front: Front
) -> None:
    accounts = repository(store, Account, snapshot_every=2)
    account = _opened([1, 2])
    store_class: Any = _StoreClass if front == "sync" else AsyncEventStore
    real_append = store_class.append_encoded

    def reply_lost(self: EventStore, *args: Any, **kwargs: Any) -> AppendResult:
        real_append(self, *args, **kwargs)  # the server did the write...
        raise redis.ConnectionError("connection reset")  # ...and the reply never came

    async def reply_lost_async(self: AsyncEventStore, *args: Any, **kwargs: Any) -> AppendResult:
        await real_append(self, *args, **kwargs)
        raise redis.ConnectionError("connection reset")

    lost = reply_lost if front == "sync" else reply_lost_async
    monkeypatch.setattr(store_class, "append_encoded", lost)
    with pytest.raises(redis.ConnectionError):
        accounts.save(account)
    monkeypatch.undo()
    assert len(account.pending_events) == 3  # the caller cannot know: it re-sends
    again = accounts.save(account)
    assert again is not None
    assert again.duplicate
    assert again.positions == (1, 2, 3)
    assert [r.version for r in store.read("Account", "acc-1")] == [1, 2, 3]
    assert store.last_position(0) == 3
    assert accounts.get("acc-1").balance == 3


def test_resave_of_a_copy_after_later_writes_still_writes_once(store: EventStore) -> None:
    accounts = repository(store, Account)
    account = _opened([1])
    lost = copy.deepcopy(account)  # what a client whose reply was lost still holds
    accounts.save(account)
    account.deposit(10)
    accounts.save(account)  # someone (the same process, later) wrote on top
    again = accounts.save(lost)
    assert again is not None
    assert again.duplicate
    assert again.positions == (1, 2)
    assert store.version_of("Account", "acc-1") == 3


def test_ids_and_type_names_the_log_cannot_parse_back_are_refused(store: EventStore) -> None:
    with pytest.raises(InvalidEvent) as empty:
        store.append("Account", "", [Deposited(amount=1)], 0)
    assert empty.value.field == "aggregate_id"
    event = NewEvent("id-1", "Deposited", 1, 1, '{"amount":3}')
    for bad_type in ("Acc:ount", "", "Acc ount"):
        with pytest.raises(ValueError, match="aggregate type"):
            store.append_encoded(bad_type, "acc-1", [event], 0)
    assert store.last_position(0) == 0
    assert store.read_log(0).events == ()


@pytest.mark.parametrize(
    ("data", "metadata", "field"),
    [
        ("[1, 2]", "", "data"),
        ("7", "", "data"),
        ("{}", "[1]", "metadata"),
        ("{}", '"x"', "metadata"),
    ],
)
def test_encoded_payloads_must_be_json_objects(
    store: EventStore, data: str, metadata: str, field: str
) -> None:
    good = NewEvent("id-1", "Deposited", 1, 1, '{"amount":3}')
    bad = NewEvent("id-2", "Deposited", 1, 1, data, metadata)
    with pytest.raises(InvalidEvent) as info:
        store.append_encoded("Account", "acc-1", [good, bad], 0)
    assert (info.value.index, info.value.field) == (2, field)
    assert store.version_of("Account", "acc-1") == 0


def test_old_schema_versions_are_upcast_on_load(store: EventStore) -> None:
    old = NewEvent("id-1", "Tagged", 1, 1, '{"tag":"vip"}')  # written before tags existed
    store.append_encoded("Account", "acc-1", [old], 0)
    assert repository(store, Account).get("acc-1").tags == ["vip"]
    (recorded,) = store.read("Account", "acc-1")
    assert (recorded.schema_version, recorded.event) == (1, Tagged(tags=["vip"]))


def test_encoded_events_keep_their_ids(store: EventStore) -> None:
    event = NewEvent("id-1", "Deposited", 1, 1700000000000, '{"amount":3}')
    store.append_encoded("Account", "acc-9", [event], 0)
    (recorded,) = store.read("Account", "acc-9")
    assert (recorded.event_id, recorded.event, recorded.recorded_at.year) == (
        "id-1",
        Deposited(amount=3),
        2023,
    )
