"""The append script's compact argument layout: three keys suffice only when the append
cannot create the aggregate or write a snapshot."""

from __future__ import annotations

import uuid
from typing import Any, cast

import pytest

from eventstore import EventStore, InvalidEvent, NewEvent, StoredDataError
from eventstore._core.codec import encode_batch
from eventstore._core.records import Entries
from eventstore._core.scripts import append_call, parse_append_reply
from tests.domain import Deposited, Opened


def test_an_existing_aggregate_is_appended_to_with_three_keys(store: EventStore) -> None:
    store.append("Account", "acc-1", [Opened(owner="ann")], 0)
    stream = store.keys.stream("Account", "acc-1")
    call = append_call(
        store.keys, "Account", "acc-1", encode_batch(stream, [Deposited(amount=1)]), 1
    )
    assert len(call.keys) == 3
    result = parse_append_reply(call, store._append(keys=call.keys, args=call.args))
    assert (result.first_version, result.positions) == (2, (2,))


def test_a_new_aggregate_with_three_keys_is_refused_before_any_write(store: EventStore) -> None:
    stream = store.keys.stream("Account", "acc-1")
    call = append_call(store.keys, "Account", "acc-1", encode_batch(stream, [Opened(owner="a")]), 0)
    with pytest.raises(InvalidEvent) as info:
        parse_append_reply(call, store._append(keys=call.keys[:3], args=call.args))
    assert info.value.field == "keys"
    assert store.client.exists(stream) == 0


def test_ids_not_ours_behind_a_matching_length_are_refused_by_the_first_write(
    store: EventStore,
) -> None:
    store.append("Account", "acc-1", [Opened(owner="ann"), Deposited(amount=1)], 0)
    stream = store.keys.stream("Account", "acc-1")
    store.client.xadd(stream, {"t": "Deposited"}, "0-9")  # 3 entries, the last is not 0-3
    with pytest.raises(StoredDataError) as info:
        store.append("Account", "acc-1", [Deposited(amount=1)], 3)
    assert (info.value.stream, info.value.field) == (stream, "id")
    assert store.client.xlen(stream) == 3
    assert store.last_position(0) == 2


def test_generated_event_ids_are_random_uuids_and_a_batch_shares_its_time() -> None:
    events = encode_batch("s", [Opened(owner="a"), Deposited(amount=1), Deposited(amount=2)])
    ids = [uuid.UUID(event.event_id) for event in events]
    assert [str(parsed) for parsed in ids] == [event.event_id for event in events]
    assert all(parsed.version == 4 and parsed.variant == uuid.RFC_4122 for parsed in ids)
    assert len(set(ids)) == 3
    assert len({event.timestamp_ms for event in events}) == 1
    assert events[1].data == Deposited(amount=1).model_dump_json()


def test_events_with_and_without_metadata_in_one_batch_keep_their_fields(
    store: EventStore,
) -> None:
    plain = NewEvent("id-1", "Deposited", 1, 5, '{"amount":1}')
    rich = NewEvent("id-2", "Deposited", 1, 6, '{"amount":2}', '{"who":"x"}', "", "cause")
    store.append_encoded("Account", "acc-1", [plain, rich], 0)
    first, second = store.read("Account", "acc-1")
    assert (first.metadata, first.correlation_id, first.causation_id) == ({}, None, None)
    assert (second.metadata, second.correlation_id, second.causation_id) == (
        {"who": "x"},
        None,
        "cause",
    )
    raw = cast(Entries, store.client.xrange(store.keys.stream("Account", "acc-1")))
    assert [list(fields) for _id, fields in raw] == [
        [b"t", b"s", b"i", b"ts", b"p", b"d"],
        [b"t", b"s", b"i", b"ts", b"p", b"d", b"m", b"z"],
    ]


def test_a_log_pointer_names_type_and_id_and_the_old_whole_key_form_is_still_read(
    store: EventStore,
) -> None:
    store.append("Account", "acc-1", [Opened(owner="ann"), Deposited(amount=1)], 0)
    log = store.keys.log(0)
    entries = cast(Entries, store.client.xrange(log))
    assert [fields for _, fields in entries] == [
        {b"k": b"Account:acc-1", b"v": b"1", b"t": b"Opened"},
        {b"k": b"Account:acc-1", b"v": b"2", b"t": b"Deposited"},
    ]
    # pointers written by earlier versions carry the whole stream key (and sometimes "a")
    old: dict[Any, Any] = {
        "k": store.keys.stream("Account", "acc-1"),
        "v": "2",
        "t": "Deposited",
        "a": "Account",
    }
    store.client.delete(log)  # the log again, its second pointer in the old form
    store.client.xadd(log, {"k": "Account:acc-1", "v": "1", "t": "Opened"}, "0-1")
    store.client.xadd(log, old, "0-2")
    read = list(store.read_all())
    assert [(r.aggregate_id, r.version, r.position) for r in read] == [
        ("acc-1", 1, 1),
        ("acc-1", 2, 2),
    ]


def test_a_pointer_to_an_aggregate_of_another_partition_is_refused(redis_url: str) -> None:
    namespace = f"p{uuid.uuid4().hex[:8]}"
    with EventStore.from_url(redis_url, namespace=namespace, partitions=4) as store:
        ids = [f"acc-{n}" for n in range(20)]
        here = next(i for i in ids if store.keys.partition_of(i) == 0)
        elsewhere = next(i for i in ids if store.keys.partition_of(i) != 0)
        store.append("Account", here, [Opened(owner="ann")], 0)
        store.append("Account", elsewhere, [Opened(owner="bo")], 0)
        log = store.keys.log(0)
        store.client.xadd(log, {"k": f"Account:{elsewhere}", "v": "1", "t": "Opened"}, "0-2")
        store.client.set(store.keys.position(0), 2)
        with pytest.raises(StoredDataError) as info:
            list(store.read_all())
        assert (info.value.stream, info.value.version, info.value.field) == (log, 2, "k")
        assert "not an aggregate of partition 0" in str(info.value)
