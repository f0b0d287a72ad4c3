"""Aggregate ids with key-schema characters (``:``, ``{``, ``}``), spaces and non-ASCII
go through the log, a subscription, a consumer group, its dead letters and a replay."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from eventstore import EventStore, RecordedEvent
from tests.domain import Deposited, Opened
from tests.letters import event_of

ODD = ["a:b", "x}:a:y", "{weird}", "ü-ñ-😀", " spaced ", "{ns:p0}:log", "x\ny", "%s*?"]
FAST = timedelta(milliseconds=60)


@pytest.fixture
def store3(redis_url: str, namespace: str) -> Iterator[EventStore]:
    with EventStore.from_url(redis_url, namespace=namespace, partitions=3) as opened:
        yield opened


def test_odd_ids_through_subscription_group_and_dead_letters(store3: EventStore) -> None:
    for aggregate_id in ODD:
        store3.append("Account", aggregate_id, [Opened(owner="o"), Deposited(amount=1)], 0)
    seen: list[str] = []
    with store3.subscribe(block_ms=50) as sub:
        for recorded in sub:
            seen.append(recorded.aggregate_id)
            if len(seen) == 2 * len(ODD):
                break
    assert sorted(seen) == sorted(ODD * 2)
    group = store3.consumer_group("g")
    handled: list[str] = []

    def opened_only(recorded: RecordedEvent) -> None:
        if recorded.version == 2:
            raise RuntimeError("poison")
        handled.append(recorded.aggregate_id)

    group.worker("w", opened_only, max_deliveries=1, claim_idle=FAST).run(stop_when_idle=True)
    assert sorted(handled) == sorted(ODD)
    dead = group.dead_letters()
    assert sorted((event_of(d).aggregate_id, event_of(d).version) for d in dead) == sorted(
        (aggregate_id, 2) for aggregate_id in ODD
    )
    assert group.replay_dead_letters() == len(ODD)
    again: list[str] = []
    group.worker("w", lambda r: again.append(r.aggregate_id), claim_idle=FAST).run(
        stop_when_idle=True
    )
    assert sorted(again) == sorted(ODD)
    assert (group.lag(), group.pending(), group.dead_letters()) == (0, 0, [])
