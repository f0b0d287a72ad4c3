"""Lag of a group that starts at the beginning of a trimmed log.

Lag came from positions alone (last position - last delivered), so the entries a trim
removed counted as undelivered: a group created after a trim showed them as lag forever
when the trim had emptied the log (nothing left to deliver moves its last delivered id),
and ``run(stop_when_idle=True)`` never returned.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from eventstore import EventStore, RecordedEvent
from tests.domain import Deposited

# the same tests on one server and on a Redis Cluster (one partition per slot)
pytestmark = pytest.mark.also_on_cluster
FAST = timedelta(milliseconds=60)


def _append(store: EventStore, prefix: str, count: int) -> None:
    for i in range(count):
        store.append("Account", f"{prefix}{i}", [Deposited(amount=1)], 0)


def _run_until_idle(store: EventStore, group_name: str) -> list[RecordedEvent]:
    seen: list[RecordedEvent] = []
    worker = store.consumer_group(group_name).worker("w", seen.append, claim_idle=FAST)
    watchdog = threading.Timer(5, worker.stop)
    watchdog.start()
    try:
        worker.run(stop_when_idle=True)
    finally:
        watchdog.cancel()
    return seen


def test_lag_after_a_trim_counts_only_entries_still_in_the_log(store: EventStore) -> None:
    _append(store, "a", 5)
    assert [r.trimmed_to for r in store.trim_log()] == [6]  # nothing needs the log
    group = store.consumer_group("late", start="beginning")
    assert (group.lag(), group.pending()) == (0, 0)
    assert _run_until_idle(store, "late") == []
    assert group.lag() == 0
    _append(store, "b", 3)
    assert group.lag() == 3
    assert [r.aggregate_id for r in _run_until_idle(store, "late")] == ["b0", "b1", "b2"]
    assert group.lag() == 0


def test_a_partly_trimmed_log_lags_by_what_is_left(store: EventStore) -> None:
    _append(store, "a", 5)
    store.trim_log(before=4)  # positions 1..3 go
    group = store.consumer_group("late", start="beginning")
    assert group.lag() == 2
    assert [r.aggregate_id for r in _run_until_idle(store, "late")] == ["a3", "a4"]
    assert group.lag() == 0
