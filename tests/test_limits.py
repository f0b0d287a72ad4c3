"""Event and batch size limits: exactly the limit passes, one more is refused before
anything is sent, with an error naming the stream, the event and the sizes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregates import DomainEvent
from eventstore import (
    BatchTooLarge,
    ConfigurationError,
    EventStore,
    EventTooLarge,
    InvalidEvent,
    Limits,
)
from eventstore._core.limits import check_batch, encoded_size
from eventstore._core.records import NewEvent

EMPTY = len('{"text":""}')


pytestmark = pytest.mark.both_fronts


class Note(DomainEvent):
    text: str


def _note_of_size(size: int, char: str) -> Note:
    """A Note whose JSON is exactly ``size`` bytes (``char`` is 1 or 2 bytes in UTF-8)."""
    width = len(char.encode())
    pad = size - EMPTY
    return Note(text=char * (pad // width) + "x" * (pad % width))


def _new(data: str, metadata: str = "") -> NewEvent:
    return NewEvent("id", "Note", 1, 0, data, metadata)


@settings(max_examples=50)
@given(limit=st.integers(EMPTY, 4000), char=st.sampled_from(["a", "é", "€"]))
def test_exactly_the_event_limit_passes_and_one_byte_more_does_not(limit: int, char: str) -> None:
    at_limit = _note_of_size(limit, char)
    assert encoded_size(at_limit.model_dump_json()) == limit
    check_batch("s", [_new(at_limit.model_dump_json())], Limits(max_event_bytes=limit))
    over = _new(_note_of_size(limit + 1, char).model_dump_json())
    with pytest.raises(EventTooLarge) as excinfo:
        check_batch("s", [_new("{}"), over], Limits(max_event_bytes=limit))
    error = excinfo.value
    assert (error.stream, error.index, error.event_type) == ("s", 2, "Note")
    assert (error.size, error.limit) == (limit + 1, limit)
    assert f"event #2 (Note) field 'size': {limit + 1} bytes is over the limit of {limit}" in str(
        error
    )


@given(data=st.text(max_size=50), metadata=st.text(max_size=50))
def test_the_size_is_data_plus_metadata_in_utf8(data: str, metadata: str) -> None:
    size = len(data.encode()) + len(metadata.encode())
    check_batch("s", [_new(data, metadata)], Limits(max_event_bytes=max(size, 1)))
    if size >= 2:
        with pytest.raises(EventTooLarge):
            check_batch("s", [_new(data, metadata)], Limits(max_event_bytes=size - 1))


@settings(max_examples=50)
@given(limit=st.integers(1, 30))
def test_the_batch_limits(limit: int) -> None:
    events = [_new("{}")] * limit
    check_batch("s", events, Limits(max_batch_events=limit, max_batch_bytes=2 * limit))
    with pytest.raises(BatchTooLarge) as excinfo:
        check_batch("s", [*events, _new("{}")], Limits(max_batch_events=limit))
    assert (excinfo.value.what, excinfo.value.size, excinfo.value.limit) == (
        "events",
        limit + 1,
        limit,
    )
    with pytest.raises(BatchTooLarge, match=f"{2 * limit} bytes is over the limit of"):
        check_batch("s", events, Limits(max_batch_bytes=2 * limit - 1))


def test_defaults_and_bad_limits() -> None:
    assert Limits() == Limits(1024 * 1024, 1000, 16 * 1024 * 1024)
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ConfigurationError, match=r"Limits\.max_event_bytes must be an int"):
            Limits(max_event_bytes=bad)  # type: ignore[arg-type]


@pytest.fixture
def small(redis_url: str, namespace: str) -> Iterator[EventStore]:
    limits = Limits(max_event_bytes=100, max_batch_events=3, max_batch_bytes=250)
    with EventStore.from_url(redis_url, namespace=namespace, limits=limits) as store:
        yield store


# one store for every example, on purpose: each compares positions before and after
@settings(max_examples=20, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.integers(EMPTY, 120), count=st.integers(1, 4))
def test_nothing_is_written_over_a_limit(small: EventStore, size: int, count: int) -> None:
    before = small.last_position(0)
    events = [_note_of_size(size, "é")] * count
    fits = size <= 100 and count <= 3 and size * count <= 250
    if fits:
        small.append("Board", "b1", events)
        assert small.last_position(0) == before + count
        return
    with pytest.raises(InvalidEvent) as excinfo:
        small.append("Board", "b1", events)
    assert excinfo.value.stream == small.keys.stream("Board", "b1")
    assert small.last_position(0) == before
