"""Appends: expected versions, atomicity, idempotent re-sends, reading back."""

from __future__ import annotations

import time

import pytest
import redis

from eventstore import (
    ConcurrencyError,
    EventStore,
    ExpectedVersion,
    InvalidEvent,
    NewEvent,
    Repository,
)
from eventstore._core.scripts import append_call
from tests.domain import Account, Deposited, Opened

pytestmark = [pytest.mark.both_fronts, pytest.mark.all_servers]


def test_append_and_read_back_in_order(store: EventStore) -> None:
    result = store.append("Account", "a1", [Opened(owner="ann"), Deposited(amount=5)], 0)
    assert (result.first_version, result.positions, result.duplicate) == (1, (1, 2), False)
    events = store.read("Account", "a1")
    assert [e.event for e in events] == [Opened(owner="ann"), Deposited(amount=5)]
    assert [(e.version, e.position, e.partition) for e in events] == [(1, 1, 0), (2, 2, 0)]


def test_read_backwards_with_limit_and_range(store: EventStore) -> None:
    store.append("Account", "a1", [Deposited(amount=i) for i in range(1, 8)], 0)
    back = store.read("Account", "a1", backwards=True, limit=3)
    assert [e.version for e in back] == [7, 6, 5]
    middle = store.read("Account", "a1", from_version=3, to_version=5)
    assert [e.event for e in middle] == [
        Deposited(amount=3),
        Deposited(amount=4),
        Deposited(amount=5),
    ]
    assert store.read("Account", "nobody") == []


def test_metadata_round_trips(store: EventStore) -> None:
    store.append(
        "Account",
        "a1",
        [Opened(owner="x")],
        ExpectedVersion.NO_STREAM,
        event_ids=["e-1"],
        metadata={"user": "u7", "ip": "10.0.0.1"},
        correlation_id="corr-1",
        causation_id="cause-1",
    )
    (recorded,) = store.read("Account", "a1")
    assert recorded.event_id == "e-1"
    assert recorded.metadata == {"user": "u7", "ip": "10.0.0.1"}
    assert (recorded.correlation_id, recorded.causation_id) == ("corr-1", "cause-1")
    assert recorded.recorded_at.tzinfo is not None


@pytest.mark.parametrize(
    ("expected", "ok"),
    [
        (1, True),
        (0, False),
        (2, False),
        (ExpectedVersion.ANY, True),
        (ExpectedVersion.EXISTS, True),
        (ExpectedVersion.NO_STREAM, False),
    ],
)
def test_expected_version_on_existing_stream(
    store: EventStore, expected: int | ExpectedVersion, ok: bool
) -> None:
    store.append("Account", "a1", [Opened(owner="x")], 0)
    if ok:
        assert store.append("Account", "a1", [Deposited(amount=1)], expected).first_version == 2
    else:
        with pytest.raises(ConcurrencyError) as info:
            store.append("Account", "a1", [Deposited(amount=1)], expected)
        assert info.value.actual_version == 1
        assert "a1" in info.value.stream
    assert store.version_of("Account", "a1") == (2 if ok else 1)


def test_exists_on_missing_stream_conflicts(store: EventStore) -> None:
    with pytest.raises(ConcurrencyError):
        store.append("Account", "a1", [Opened(owner="x")], ExpectedVersion.EXISTS)
    assert store.version_of("Account", "a1") == 0


def test_resend_of_same_batch_is_idempotent(store: EventStore) -> None:
    events = [Opened(owner="x"), Deposited(amount=3)]
    first = store.append("Account", "a1", events, 0, event_ids=["i1", "i2"])
    store.append("Account", "other", [Opened(owner="y")], 0)
    again = store.append("Account", "a1", events, 0, event_ids=["i1", "i2"])
    assert again.duplicate
    assert again.positions == first.positions
    assert len(store.read("Account", "a1")) == 2
    assert store.last_position(0) == 3


def test_resend_with_other_ids_names_the_conflicting_version(store: EventStore) -> None:
    store.append(
        "Account", "a1", [Opened(owner="x"), Deposited(amount=3)], 0, event_ids=["i1", "i2"]
    )
    with pytest.raises(ConcurrencyError) as info:
        store.append(
            "Account", "a1", [Opened(owner="x"), Deposited(amount=3)], 0, event_ids=["i1", "other"]
        )
    assert (info.value.expected_version, info.value.actual_version) == (0, 2)
    assert info.value.conflicting_version == 2


def test_lost_reply_then_resend_with_any_writes_once(store: EventStore) -> None:
    store.append("Account", "a1", [Opened(owner="x")], ExpectedVersion.ANY, event_ids=["i1"])
    again = store.append(
        "Account", "a1", [Opened(owner="x")], ExpectedVersion.ANY, event_ids=["i1"]
    )
    assert again.duplicate
    assert store.version_of("Account", "a1") == 1


def _encoded(event_id: str, data: str) -> NewEvent:
    return NewEvent(
        event_id=event_id, event_type="Deposited", schema_version=1, timestamp_ms=1, data=data
    )


def test_invalid_event_in_the_middle_writes_nothing(store: EventStore) -> None:
    batch = [_encoded("e1", '{"amount": 1}'), _encoded("e2", "{not json"), _encoded("e3", "{}")]
    with pytest.raises(InvalidEvent) as info:
        store.append_encoded("Account", "a1", batch, 0)
    assert (info.value.index, info.value.field) == (2, "data")
    assert "a1" in str(info.value)
    assert store.read("Account", "a1") == []
    assert store.last_position(0) == 0
    assert store.client.xlen(store.keys.log(0)) == 0


def test_repeated_event_id_in_a_batch_is_refused(store: EventStore) -> None:
    batch = [_encoded("same", '{"amount": 1}'), _encoded("same", '{"amount": 2}')]
    with pytest.raises(InvalidEvent, match="repeated"):
        store.append_encoded("Account", "a1", batch, 0)
    assert store.version_of("Account", "a1") == 0


def test_unserializable_event_is_refused_before_sending(store: EventStore) -> None:
    with pytest.raises(InvalidEvent) as info:
        store.append("Account", "a1", [Deposited(amount=1), "not an event"], 0)  # type: ignore[list-item]
    assert info.value.index == 2
    assert store.version_of("Account", "a1") == 0


def test_positions_are_gap_free_across_aggregates(store: EventStore) -> None:
    for i in range(5):
        store.append("Account", f"a{i}", [Opened(owner="x"), Deposited(amount=i + 1)], 0)
    positions = [e.position for i in range(5) for e in store.read("Account", f"a{i}")]
    assert sorted(positions) == list(range(1, 11))
    page = store.read_log(0)
    assert [e.position for e in page.events] == list(range(1, 11))


def test_partitions_are_fixed_and_adopted(redis_url: str, namespace: str) -> None:
    with EventStore.from_url(redis_url, namespace=namespace, partitions=4) as created:
        assert created.partitions == 4
    with EventStore.from_url(redis_url, namespace=namespace) as adopted:
        assert adopted.partitions == 4
    with pytest.raises(Exception, match="4 partitions"):
        EventStore.from_url(redis_url, namespace=namespace, partitions=2)


def test_eviction_policy_that_can_lose_history_is_refused(redis_url: str, namespace: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.config_set("maxmemory-policy", "allkeys-lru")
    try:
        with pytest.raises(Exception, match="maxmemory-policy"):
            EventStore.from_url(redis_url, namespace=namespace)
    finally:
        client.config_set("maxmemory-policy", "noeviction")
        client.close()


@pytest.mark.sync_front  # works on the sync client's own connections
def test_reply_lost_on_the_wire_then_resave_writes_once(store: EventStore) -> None:
    """Send the append, drop the connection before reading the reply, then save again."""
    accounts = Repository(store, Account)
    account = Account(id="lost-1")
    account.open("ann")
    account.deposit(7)
    events = [
        NewEvent(
            event_id=i,
            event_type=e.event_type,
            schema_version=1,
            timestamp_ms=t,
            data=e.model_dump_json(),
        )
        for e, i, t in zip(
            account.pending_events,
            account.pending_event_ids,
            account.pending_event_times,
            strict=True,
        )
    ]
    call = append_call(store.keys, "Account", "lost-1", events, 0)
    connection = store.client.connection_pool.get_connection()
    try:
        connection.send_command(  # type: ignore[no-untyped-call]
            "EVAL", store._append.script, len(call.keys), *call.keys, *call.args
        )
    finally:
        connection.disconnect()  # type: ignore[no-untyped-call]  # the reply is never read: the client cannot know
        store.client.connection_pool.release(connection)
    deadline = time.monotonic() + 5
    while store.version_of("Account", "lost-1") < 2 and time.monotonic() < deadline:
        time.sleep(0.005)  # the server ran it; only the reply was lost
    result = accounts.save(account)  # the natural retry: same aggregate, same event ids
    assert result is not None
    assert result.duplicate
    assert [e.version for e in store.read("Account", "lost-1")] == [1, 2]
    assert store.last_position(store.keys.partition_of("lost-1")) == 2
    assert accounts.get("lost-1").balance == 7
