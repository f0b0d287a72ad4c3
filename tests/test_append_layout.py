"""The append script's compact argument layout: three keys suffice only when the append
cannot create the aggregate or write a snapshot."""

from __future__ import annotations

import pytest

from eventstore import EventStore, InvalidEvent, StoredDataError
from eventstore._core.codec import encode_batch
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
