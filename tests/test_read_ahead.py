"""Catch-up writes its next reads before decoding a page (``ReadAhead``): the line stays in
step, an early stop leaves no stale reply in the pool, a dropped connection mid-page
repeats and skips nothing."""

from __future__ import annotations

import itertools
import threading
import uuid

import pytest
import redis

from eventstore import EventStore, RecordedEvent, StoredDataError
from eventstore._redis.readahead import ReadAhead
from tests.domain import Deposited, Opened


def _fill(store: EventStore, aggregates: int, per: int) -> None:
    for n in range(aggregates):
        events = [Opened(owner=f"o{n}"), *(Deposited(amount=a) for a in range(1, per))]
        store.append("Account", f"acc-{n}", events, 0)


def _by_partition(events: list[RecordedEvent]) -> dict[int, list[int]]:
    seen: dict[int, list[int]] = {}
    for recorded in events:
        seen.setdefault(recorded.partition, []).append(recorded.position)
    return seen


def test_replies_come_back_in_the_order_written(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    key = f"ra:{uuid.uuid4().hex}"
    line = ReadAhead(client)
    try:
        line.send([("SET", key, "1"), ("INCR", key)])
        line.send([("HGET", key, "f"), ("GET", key)])  # the third reply is an error
        assert line.unread == 4
        first = line.read(2)
        assert first == [b"OK", 2]
        third, fourth = line.read(2)
        assert isinstance(third, redis.ResponseError)
        assert "WRONGTYPE" in str(third)
        assert fourth == b"2"
        assert line.unread == 0
    finally:
        line.close()
        client.delete(key)
        client.close()


def test_a_line_closed_with_replies_unread_is_disconnected_not_reused(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, max_connections=1)  # every command: one connection
    try:
        before = client.client_id()
        line = ReadAhead(client)
        line.send([("ECHO", "stale"), ("ECHO", "staler")])
        assert line.read(1) == [b"stale"]
        line.close()
        assert client.echo("fresh") == b"fresh"  # not "staler"
        assert client.client_id() != before  # a new connection

        reused = client.client_id()
        line = ReadAhead(client)
        line.send([("ECHO", "all read")])
        assert line.read(1) == [b"all read"]
        line.close()
        assert client.client_id() == reused  # in step: given back as it was
    finally:
        client.close()


def test_a_read_ahead_of_more_replies_than_written_is_refused(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    line = ReadAhead(client)
    try:
        line.send([("PING",)])
        with pytest.raises(ValueError, match="2 replies asked for, 1 unread"):
            line.read(2)
        assert line.read(1) == [b"PONG"]
    finally:
        line.close()
        client.close()


def test_stopping_a_catch_up_early_leaves_the_store_in_step(redis_url: str, namespace: str) -> None:
    with EventStore.from_url(redis_url, namespace=namespace, partitions=3) as store:
        _fill(store, aggregates=30, per=5)
        for taken in (1, 4, 7, 40):
            events = store.read_all(page_size=4)
            head = list(itertools.islice(events, taken))
            events.close()  # type: ignore[attr-defined]  # pages ahead were written for
            assert len(head) == taken
            assert store.version_of("Account", "acc-3") == 5  # no stale reply read
            everything = list(store.read_all(page_size=4))
            assert len(everything) == 150
            for partition, seen in _by_partition(everything).items():
                assert seen == list(range(1, store.last_position(partition) + 1))


def test_a_connection_dropped_mid_catch_up_repeats_and_skips_nothing(
    redis_url: str, namespace: str
) -> None:
    killer = redis.Redis.from_url(redis_url)
    with EventStore.from_url(redis_url, namespace=namespace, partitions=3) as store:
        _fill(store, aggregates=40, per=5)
        delivered: list[RecordedEvent] = []
        kills = []
        with store.subscribe(page_size=4, block_ms=100) as subscription:
            deadline = threading.Timer(30, subscription.stop)  # a lost event: fail, not hang
            deadline.start()
            for recorded in subscription:
                delivered.append(recorded)
                if len(delivered) in (5, 23, 61, 62, 150):
                    # every other client: the subscription's line, with reads written ahead
                    # (at 62 it has not read since 61's kill: nothing to kill yet)
                    kills.append(killer.client_kill_filter(_type="normal", skipme=True))
                if len(delivered) == 200:
                    break
            deadline.cancel()
            assert str(subscription.checkpoint) == str(store.head())
        assert sum(1 for killed in kills if killed) >= 4
        ids = [recorded.event_id for recorded in delivered]
        assert len(set(ids)) == 200
        for partition, seen in _by_partition(delivered).items():
            assert seen == list(range(1, store.last_position(partition) + 1))
    killer.close()


def test_an_event_that_cannot_be_read_fails_in_its_turn_after_the_ones_before(
    redis_url: str, namespace: str
) -> None:
    with EventStore.from_url(redis_url, namespace=namespace) as store:
        _fill(store, aggregates=3, per=5)
        stream = store.keys.stream("Account", "acc-1")
        store.client.xdel(stream, "0-3")  # position 8 now points at nothing
        delivered: list[RecordedEvent] = []
        with pytest.raises(StoredDataError) as info:
            delivered.extend(store.read_all(page_size=100))
        assert (info.value.stream, info.value.version) == (stream, 3)
        assert "log position 8 points at a missing event" in str(info.value)
        assert [recorded.position for recorded in delivered] == list(range(1, 8))

        with store.subscribe(page_size=100, block_ms=50) as subscription:
            taken: list[RecordedEvent] = []
            with pytest.raises(StoredDataError):
                taken.extend(subscription)
            assert [recorded.position for recorded in taken] == list(range(1, 8))
            assert str(subscription.checkpoint) == "7"  # resume right before the bad one
