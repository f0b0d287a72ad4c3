"""Bad stored data, planted with raw Redis commands, is reported and never half-loaded.

Every case raises a typed ``StoredDataError`` naming the key, the version and the field
at fault, both from ``Repository.get`` and from ``EventStore.read``.
"""

from __future__ import annotations

from typing import Any

import pytest

from aggregates import DomainEvent
from eventstore import (
    AggregateNotFound,
    EventStore,
    NewEvent,
    Repository,
    SnapshotError,
    StoredDataError,
    UnknownEventType,
)
from tests.domain import Account

pytestmark = pytest.mark.both_fronts


class StoredOrphan(DomainEvent):
    """A registered event type the Account aggregate has no projector for."""

    value: int


GOOD: dict[Any, Any] = {
    "t": "Deposited",
    "s": "1",
    "i": "e",
    "ts": "1700000000000",
    "p": "1",
    "d": '{"amount":1}',
}


def _plant(store: EventStore, versions: dict[int, dict[str, Any]], account: str = "acc-1") -> str:
    """Write raw entries ``0-<version>`` into the aggregate's stream, as a bug or a hand would."""
    stream = store.keys.stream("Account", account)
    for version, fields in sorted(versions.items()):
        entry: dict[Any, Any] = {**fields, "i": f"e{version}", "p": str(version)}
        store.client.xadd(stream, entry, f"0-{version}")
    return stream


def _get(store: EventStore, version: int | None = None) -> Account:
    return Repository(store, Account).get("acc-1", version)


@pytest.mark.parametrize(
    ("bad_fields", "field", "reason"),
    [
        ({"t": "NoSuchEventType"}, "t", "unknown event type 'NoSuchEventType'"),
        ({"d": "{not json"}, "d", "Invalid JSON"),
        ({"d": '{"amount":"lots"}'}, "d.amount", "integer"),
        ({"d": '{"amount":1,"extra":2}'}, "d.extra", "Extra inputs"),
        ({"d": '{"amount":1}', "s": "x"}, "s", "not an integer"),
        ({"s": "7"}, "s", "newer than the code"),
        ({"t": "Tagged", "s": "1", "d": '{"no_tag":1}'}, "s", "upcast"),
        ({"t": "Tagged", "s": "1", "d": "[1]"}, "d", "not a JSON object"),
        ({"t": "Tagged", "s": "1", "d": b'{"tag":"\xff"}'}, "d", "invalid JSON"),
        ({"d": b'{"amount":"\xff"}'}, "d", "Invalid JSON"),
        ({"m": "{oops"}, "m", "invalid JSON"),
        ({"m": b'{"who":"\xff"}'}, "m", "invalid JSON"),
        ({"m": "[1, 2]"}, "m", "not a JSON object"),
        ({"ts": "yesterday"}, "ts", "not an integer"),
    ],
)
def test_bad_event_fields_name_stream_version_and_field(
    store: EventStore, bad_fields: dict[str, str | bytes], field: str, reason: str
) -> None:
    stream = _plant(store, {1: GOOD, 2: {**GOOD, **bad_fields}, 3: GOOD})
    with pytest.raises(StoredDataError) as from_get:
        _get(store)
    with pytest.raises(StoredDataError) as from_read:
        store.read("Account", "acc-1")
    for error in (from_get.value, from_read.value):
        assert (error.stream, error.version, error.field) == (stream, 2, field)
        assert reason in str(error)
        assert stream in str(error)
        assert "version 2" in str(error)
    assert _get(store, version=1).balance == 1  # the good prefix still loads


def test_unknown_type_is_its_own_error(store: EventStore) -> None:
    _plant(store, {1: {**GOOD, "t": "Vanished"}})
    with pytest.raises(UnknownEventType) as info:
        _get(store)
    assert info.value.event_type == "Vanished"
    assert "import the module" in str(info.value)


def test_a_missing_field_is_named(store: EventStore) -> None:
    stream = store.keys.stream("Account", "acc-1")
    store.client.xadd(stream, {"t": "Deposited", "s": "1", "i": "e", "ts": "1", "p": "1"}, "0-1")
    with pytest.raises(StoredDataError) as info:
        _get(store)
    assert (info.value.version, info.value.field, info.value.reason) == (1, "d", "field is missing")


def test_an_event_the_aggregate_cannot_project_is_named(store: EventStore) -> None:
    stream = _plant(store, {1: GOOD, 2: {**GOOD, "t": "StoredOrphan", "d": '{"value":1}'}})
    with pytest.raises(StoredDataError) as info:
        _get(store)
    assert (info.value.stream, info.value.version, info.value.field) == (stream, 2, "t")
    assert "no projector" in str(info.value)


def test_a_gap_in_the_stream_is_named(store: EventStore) -> None:
    stream = _plant(store, {1: GOOD, 2: GOOD, 4: GOOD, 5: GOOD})
    with pytest.raises(StoredDataError) as info:
        _get(store)
    assert (info.value.stream, info.value.version, info.value.field) == (stream, 4, "id")
    assert "gap" in str(info.value)
    assert _get(store, version=2).balance == 2


def test_entry_ids_not_written_by_us_are_named(store: EventStore) -> None:
    stream = store.keys.stream("Account", "acc-1")
    store.client.xadd(stream, GOOD, "1700000000000-0")
    with pytest.raises(StoredDataError) as from_get:
        _get(store)
    assert (from_get.value.stream, from_get.value.field) == (stream, "id")
    with pytest.raises(StoredDataError) as from_append:
        store.append_encoded("Account", "acc-1", _one_new_event(), 0)
    assert from_append.value.stream == stream
    assert store.client.xlen(stream) == 1


def _one_new_event() -> list[NewEvent]:
    return [NewEvent("n1", "Deposited", 1, 1, '{"amount":1}')]


def _plant_snapshot(store: EventStore, version: int, state: str, fingerprint: str = "") -> str:
    key = store.keys.snapshot("Account", "acc-1")
    store.client.hset(
        key,
        mapping={"v": version, "f": fingerprint or Account.schema_fingerprint(), "s": state},
    )
    return key


@pytest.mark.parametrize(
    ("state", "field", "reason"),
    [
        ("{corrupt", "s", "invalid JSON"),
        ("[1, 2]", "s", "not a JSON object"),
        ('{"owner": "x", "tags": []}', "s.balance", "missing"),
        ('{"owner": "x", "balance": "lots", "tags": []}', "s.balance", "invalid"),
    ],
)
def test_bad_snapshot_names_key_version_and_field(
    store: EventStore, state: str, field: str, reason: str
) -> None:
    _plant(store, {1: GOOD, 2: GOOD, 3: GOOD})
    key = _plant_snapshot(store, 2, state)
    with pytest.raises(SnapshotError) as info:
        _get(store)
    assert (info.value.stream, info.value.version, info.value.field) == (key, 2, field)
    assert reason in str(info.value)
    # without the snapshot (or at a version before it) the events still load
    assert Repository(store, Account).get("acc-1", use_snapshot=False).balance == 3
    assert _get(store, version=1).balance == 1


def test_snapshot_of_another_shape_is_skipped_not_an_error(store: EventStore) -> None:
    _plant(store, {1: GOOD, 2: GOOD})
    _plant_snapshot(store, 2, '{"something": "else"}', fingerprint="another-shape")
    assert _get(store).balance == 2


def test_corrupt_snapshot_version_does_not_break_a_save(store: EventStore) -> None:
    accounts = Repository(store, Account, snapshot_every=1)
    account = Account(id="acc-1")
    account.deposit(1)
    accounts.save(account)
    store.client.hset(store.keys.snapshot("Account", "acc-1"), "v", "garbage")
    account.deposit(2)
    accounts.save(account)  # the due snapshot replaces the corrupt one, in the same call
    snapshot = store.read_snapshot("Account", "acc-1")
    assert snapshot is not None
    assert snapshot.version == 2
    assert accounts.get("acc-1").balance == 3


@pytest.mark.parametrize("garbage", ["garbage", "nan", "1.5", "-3"])
def test_take_snapshot_replaces_a_snapshot_whose_version_is_corrupt(
    store: EventStore, garbage: str
) -> None:
    accounts = Repository(store, Account, snapshot_every=1)
    account = Account(id="acc-1")
    account.deposit(1)
    account.deposit(2)
    accounts.save(account)
    store.client.hset(store.keys.snapshot("Account", "acc-1"), "v", garbage)
    taken = accounts.take_snapshot("acc-1")  # snapshot.lua, outside an append
    stored = store.read_snapshot("Account", "acc-1")
    assert stored is not None
    assert stored.version == taken.version == 2
    assert accounts.get("acc-1").balance == 3


def test_a_corrupt_position_counter_stops_appends_before_any_write(store: EventStore) -> None:
    store.client.set(store.keys.position(0), "not-a-number")
    with pytest.raises(StoredDataError) as info:
        store.append_encoded("Account", "acc-1", _one_new_event(), 0)
    assert info.value.stream == store.keys.position(0)
    store.client.set(store.keys.position(0), "0")
    store.client.xadd(store.keys.log(0), {"k": "x", "v": "1", "t": "T", "a": "A"}, "0-5")
    with pytest.raises(StoredDataError) as ahead:
        store.append_encoded("Account", "acc-1", _one_new_event(), 0)
    assert ahead.value.stream == store.keys.log(0)
    assert "ahead" in str(ahead.value)
    with pytest.raises(AggregateNotFound):
        _get(store)
