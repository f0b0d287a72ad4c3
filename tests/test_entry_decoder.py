"""The batch decoder's fast path agrees with ``decode_fields`` on every entry: the same
record for a good one, the same ``StoredDataError`` for a bad one (no Redis needed), and
a load without records rebuilds the same aggregate as a load with them."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from eventstore import EventStore, RecordedEvent, Repository, StoredDataError
from eventstore._core.codec import EntryDecoder, decode_fields, encode_event
from eventstore._core.records import _RECORDED_EVENT_FIELDS, recorded_event
from tests.domain import Account, Deposited, Opened
from tests.strategies import account_events, rich_events

STREAM = "{es:p0}:a:Account:acc-1"


def _entry(event: Any, position: int = 7) -> list[bytes]:
    new = encode_event(event, event_id="ev-1", timestamp_ms=1_700_000_000_123)
    return [
        *(b"t", new.event_type.encode()),
        *(b"s", str(new.schema_version).encode()),
        *(b"i", new.event_id.encode()),
        *(b"ts", str(new.timestamp_ms).encode()),
        *(b"p", str(position).encode()),
        *(b"d", new.data.encode()),
    ]


_BAD_VALUES = st.one_of(
    st.sampled_from([b"", b"\xff", b"-1", b"0", b"1e3", b" 2", b"99999999999999999999", b"{"]),
    st.sampled_from([b'{"amount":"x"}', b"[]", b'{"owner":1}', b"NoSuchType", b"2"]),
    st.binary(max_size=8),
)


def _outcome(decode: Any) -> Any:
    try:
        return decode()
    except StoredDataError as exc:
        return ("error", str(exc), exc.stream, exc.version, exc.field)


def _both(fields: list[bytes], version: int = 3) -> tuple[Any, Any]:
    where: dict[str, Any] = {"aggregate_type": "Account", "aggregate_id": "acc-1"}
    fast = _outcome(
        lambda: EntryDecoder().record(STREAM, b"0-3", fields, partition=0, version=version, **where)
    )
    slow = _outcome(
        lambda: decode_fields(STREAM, b"0-3", fields, partition=0, version=version, **where)
    )
    return fast, slow


@given(event=account_events | rich_events)
def test_good_entries_decode_the_same_either_way(event: Any) -> None:
    fast, slow = _both(_entry(event))
    assert fast == slow
    assert fast.event == event


@given(
    event=account_events,
    index=st.integers(min_value=0, max_value=11),
    value=_BAD_VALUES,
    extra=st.booleans(),
)
@example(event=Deposited(amount=1), index=9, value=b"0", extra=False)  # position
@example(event=Deposited(amount=1), index=9, value=b"-1", extra=False)
@example(event=Deposited(amount=1), index=9, value=b"99999999999999999999999", extra=False)
@example(event=Deposited(amount=1), index=7, value=b"99999999999999999999", extra=False)  # time
@example(event=Deposited(amount=1), index=5, value=b"\xff", extra=False)  # event id
@example(event=Deposited(amount=1), index=3, value=b"2", extra=False)  # schema version
@example(event=Deposited(amount=1), index=1, value=b"NoSuchType", extra=False)
def test_any_changed_entry_decodes_or_fails_the_same_either_way(
    event: Any, index: int, value: bytes, extra: bool
) -> None:
    fields = _entry(event)
    fields[index] = value
    if extra:  # fields beyond the six every event has take the checked path
        fields += [b"m", b'{"k": 1}']
    fast, slow = _both(fields)
    assert fast == slow


def test_the_typed_path_names_the_same_error() -> None:
    fields = _entry(Deposited(amount=1))
    fields[11] = b'{"amount": "lots"}'
    with pytest.raises(StoredDataError) as caught:
        EntryDecoder().event(STREAM, b"0-3", fields, 3)
    assert (caught.value.stream, caught.value.version, caught.value.field) == (
        STREAM,
        3,
        "d.amount",
    )


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(deposits=st.lists(st.integers(min_value=1, max_value=100), max_size=40))
def test_a_load_without_records_rebuilds_the_same_aggregate(
    store: EventStore, deposits: list[int]
) -> None:
    aggregate_id = str(uuid.uuid4())  # the store outlives the examples
    events = [Opened(owner="ann"), *(Deposited(amount=a) for a in deposits)]
    store.append("Account", aggregate_id, events, 0)
    with_records = store.load("Account", aggregate_id, window=7)
    typed = store.load("Account", aggregate_id, window=7, records=False)
    assert typed.events == ()
    assert [(r.version, r.event) for r in with_records.events] == list(typed.typed)
    accounts = Repository(store, Account)
    got, rebuilt = accounts.get(aggregate_id), accounts.rebuild(aggregate_id, with_records)
    assert (got.version, got.state()) == (rebuilt.version, rebuilt.state())
    assert got.balance == sum(deposits)


def test_recorded_event_builds_the_same_frozen_record_as_the_constructor() -> None:
    fields = [a.name for a in attrs.fields(RecordedEvent)]
    assert fields == list(_RECORDED_EVENT_FIELDS)  # the fast builder's slots are attrs'
    values: list[Any] = [Deposited(amount=1), "Account", "a", 3, 9, 1, "e", datetime.now(UTC)]
    values += [{"k": 1}, "c", "z", "Deposited", 2]
    fast, slow = recorded_event(*values), RecordedEvent(*values)
    assert type(fast) is RecordedEvent
    assert fast == slow
    assert repr(fast) == repr(slow)
    assert attrs.asdict(fast, recurse=False) == dict(zip(fields, values, strict=True))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        fast.version = 4  # type: ignore[misc]
    assert copy.copy(fast) == fast
    assert attrs.evolve(fast, version=4).version == 4
