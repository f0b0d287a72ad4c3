"""Positions and versions stay exact beyond 1e14, where Lua's own number formatting
switches to exponent form, up to 2^53, where the log stops taking events."""

from __future__ import annotations

import threading
from typing import Any, cast

import pytest

from eventstore import EventStore, InvalidEvent, LiveFeed, LiveNotification
from tests.domain import Deposited, Opened

pytestmark = pytest.mark.both_fronts

TOP = 2**53


def _next(feed: LiveFeed) -> LiveNotification:
    timer = threading.Timer(5, feed.stop)
    timer.start()
    try:
        return next(feed)
    finally:
        timer.cancel()


@pytest.mark.parametrize("start", [10**14 - 2, 10**15 + 7, TOP - 5])
def test_positions_past_1e14_are_written_and_read_exactly(store: EventStore, start: int) -> None:
    partition = store.keys.partition_of("a1")
    store.client.set(store.keys.position(partition), start)
    with store.live() as feed:
        result = store.append("Account", "a1", [Opened(owner="x"), Deposited(amount=3)], 0)
        notes = [_next(feed), _next(feed)]
    assert result.positions == (start + 1, start + 2)
    assert [note.position for note in notes] == [start + 1, start + 2]
    log = cast(list[tuple[bytes, Any]], store.client.xrange(store.keys.log(partition)))
    assert [entry_id.decode() for entry_id, _ in log] == [f"0-{start + 1}", f"0-{start + 2}"]
    assert int(cast(bytes, store.client.get(store.keys.position(partition)))) == start + 2
    events = list(store.read_all())
    assert [event.position for event in events] == [start + 1, start + 2]
    assert [event.version for event in events] == [1, 2]
    assert store.last_position(partition) == start + 2
    # a re-send is recognised, and answered with its stored positions, exactly
    batch, ids = [Deposited(amount=1), Deposited(amount=2)], ["e-1", "e-2"]
    first = store.append("Account", "a1", batch, 2, event_ids=ids)
    again = store.append("Account", "a1", batch, 2, event_ids=ids)
    assert again.duplicate
    assert again.positions == first.positions == (start + 3, start + 4)


def test_the_log_refuses_events_past_2_pow_53_writing_nothing(store: EventStore) -> None:
    partition = store.keys.partition_of("a1")
    store.client.set(store.keys.position(partition), TOP - 1)
    with pytest.raises(InvalidEvent) as info:
        store.append("Account", "a1", [Opened(owner="x"), Deposited(amount=3)], 0)
    assert info.value.field == "position"
    assert store.client.exists(store.keys.stream("Account", "a1")) == 0
    assert store.client.xlen(store.keys.log(partition)) == 0
    assert store.append("Account", "a1", [Opened(owner="x")], 0).positions == (TOP,)
