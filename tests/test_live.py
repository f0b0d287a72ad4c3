"""Live notifications: typed Pub/Sub hints with selection, subscriber counts, stop.

Each storage test runs on both fronts (the async one through ``BlockingAsyncStore``).
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventstore import EventStore, InvalidEvent, LiveFeed, LiveNotification, StoredDataError
from eventstore._core.codec import encode_batch
from eventstore._core.keys import KeySchema
from eventstore._core.notifications import (
    LiveChannels,
    LiveSelection,
    LiveStats,
    parse_notification,
)
from eventstore._core.scripts import append_call, parse_append_reply
from tests.domain import Deposited, Opened, Withdrawn
from tests.fronts import Front, open_store
from tests.strategies import names

pytestmark = [pytest.mark.both_fronts, pytest.mark.all_servers]


def _next(feed: LiveFeed, timeout: float = 5) -> LiveNotification:
    timer = threading.Timer(timeout, feed.stop)
    timer.start()
    try:
        return next(feed)
    finally:
        timer.cancel()


def test_notifications_are_typed_and_point_at_the_event(store: EventStore) -> None:
    with store.live() as feed:
        result = store.append("Account", "a1", [Opened(owner="x"), Deposited(amount=3)], 0)
        first, second = _next(feed), _next(feed)
    assert result.notified == 2
    assert (first.aggregate_type, first.aggregate_id, first.version) == ("Account", "a1", 1)
    assert (second.event_type, second.position, second.partition) == ("Deposited", 2, 0)
    assert second.channel == store.keys.live_channel("Account")
    assert second.recorded_at.tzinfo is not None
    assert feed.fetch(second).event == Deposited(amount=3)


def test_selection_by_aggregate_type_event_type_and_id(store: EventStore) -> None:
    with (
        store.live("Wallet") as wallets,
        store.live(event_types="Withdrawn") as withdrawals,
        store.live(["Account"], aggregate_ids=["a2"]) as one_account,
    ):
        store.append("Account", "a1", [Opened(owner="x"), Withdrawn(amount=1)], 0)
        store.append("Account", "a2", [Opened(owner="y")], 0)
        store.append("Wallet", "w1", [Deposited(amount=5)], 0)
        assert _next(wallets).aggregate_id == "w1"
        assert (_next(withdrawals).aggregate_id, _next(one_account).aggregate_id) == ("a1", "a2")
        store.append("Account", "a2", [Withdrawn(amount=1)], 1)
        assert _next(withdrawals).aggregate_id == "a2"
        assert _next(one_account).version == 2


def test_subscriber_counts_per_channel(store: EventStore, redis_url: str, front: Front) -> None:
    assert store.live_stats().channels == {}
    # the feeds of one store share its connection: a channel counts the stores listening
    with (
        open_store(front, redis_url, namespace=store.namespace) as other,
        store.live("Account"),
        store.live(["Account", "Wallet"]),
        other.live("Account"),
        store.live() as everything,
    ):
        stats = store.live_stats()
        assert stats.channels == {
            store.keys.live_channel("Account"): 2,
            store.keys.live_channel("Wallet"): 1,
        }
        assert stats.patterns >= 1
        assert stats.total >= 4
        result = store.append("Account", "a1", [Opened(owner="x")], 0)
        assert result.notified == 3  # two connections on the channel and one pattern
        assert _next(everything).aggregate_id == "a1"
    assert store.live_stats().channels == {}


def test_stop_from_another_thread_ends_the_iteration(store: EventStore) -> None:
    with store.live(poll_seconds=0.05) as feed:
        timer = threading.Timer(0.2, feed.stop)
        started = time.monotonic()
        timer.start()
        assert list(feed) == []
        timer.join()
    assert time.monotonic() - started < 5


def test_a_store_without_notify_publishes_nothing(
    redis_url: str, namespace: str, front: Front
) -> None:
    with (
        open_store(front, redis_url, namespace=namespace, notify=False) as quiet,
        quiet.live(poll_seconds=0.05) as feed,
    ):
        assert quiet.append("Account", "a1", [Opened(owner="x")], 0).notified == 0
        threading.Timer(0.3, feed.stop).start()
        assert list(feed) == []


@given(
    st.text(min_size=1, max_size=12),
    st.integers(0, 10**9),
    st.integers(0, 10**9),
    st.integers(0, 63),
    st.integers(0, 2**41),
)
def test_notification_payloads_parse(
    aggregate_id: str, version: int, position: int, partition: int, millis: int
) -> None:
    payload = (
        f'{{"aggregate_type":"T","aggregate_id":{json.dumps(aggregate_id)},"version":{version},'
        f'"position":{position},"partition":{partition},"event_type":"E",'
        f'"event_id":"e","recorded_at":{millis}}}'
    )
    note = parse_notification("ns:live:T", payload)
    assert (note.aggregate_id, note.version, note.position) == (aggregate_id, version, position)
    assert LiveSelection.of(None, ["E"], [aggregate_id]).keeps(note)
    assert not LiveSelection.of(None, ["Other"], None).keeps(note)


def test_malformed_notification_names_the_channel() -> None:
    with pytest.raises(StoredDataError, match="ns:live:T"):
        parse_notification("ns:live:T", b'{"aggregate_type": "T"}')


def test_feed_resubscribes_after_its_connection_is_killed(store: EventStore) -> None:
    with store.live("Account", poll_seconds=0.05) as feed:
        assert int(store.client.client_kill_filter(_type="pubsub")) >= 1
        arrived: list[LiveNotification] = []
        reader = threading.Thread(target=lambda: arrived.append(_next(feed, timeout=10)))
        reader.start()
        version = 0
        deadline = time.monotonic() + 10
        while reader.is_alive() and time.monotonic() < deadline:
            version += 1  # hints published before the re-subscribe are lost: keep sending
            store.append("Account", "a1", [Deposited(amount=version)], version - 1)
            time.sleep(0.05)
        reader.join()
    assert arrived
    assert arrived[0].aggregate_id == "a1"


def test_a_standalone_server_keeps_classic_channels(store: EventStore) -> None:
    assert not store.live_channels.sharded  # 6.2 and 7.x alike: PUBLISH / SUBSCRIBE
    assert store.live_channels.publish_command == "PUBLISH"
    with store.live("Account"):
        assert store.live_stats().by_type == {"Account": 1}


def test_the_script_refuses_an_unknown_publish_command(store: EventStore) -> None:
    stream = store.keys.stream("Account", "a1")
    events = encode_batch(stream, [Opened(owner="x")])
    call = append_call(store.keys, "Account", "a1", events, 0, channel="c", publish="FLUSHALL")
    with pytest.raises(InvalidEvent, match="publish"):
        parse_append_reply(call, store._append(keys=call.keys, args=call.args))
    assert store.version_of("Account", "a1") == 0


@given(names, st.integers(1, 64), names, st.text(min_size=1, max_size=12))
def test_sharded_channels_sit_in_the_slot_of_their_partition(
    namespace: str, partitions: int, aggregate_type: str, aggregate_id: str
) -> None:
    keys = KeySchema(namespace, partitions)
    sharded, classic = LiveChannels(keys, sharded=True), LiveChannels(keys)
    channel = sharded.for_append(aggregate_type, aggregate_id)
    partition = keys.partition_of(aggregate_id)
    assert channel.startswith(keys.tag(partition))  # same hash tag as the script's keys
    assert sharded.publish_command == "SPUBLISH"
    assert channel in sharded.for_types([aggregate_type])
    assert len(sharded.for_types([aggregate_type])) == partitions
    assert classic.for_types([aggregate_type]) == [classic.for_append(aggregate_type, "x")]
    assert keys.live_channel_type(channel) == aggregate_type
    assert keys.live_channel_type(keys.live_channel(aggregate_type)) == aggregate_type
    assert keys.live_channel_type(keys.log(partition)) is None
    assert KeySchema(f"{namespace}x").live_channel_type(channel) is None
    assert keys.live_channel_type(f"{keys.tag(partition)[:-1]}1") is None  # no "}:live:"


def test_stats_count_a_type_once_across_its_partition_channels() -> None:
    keys = KeySchema("ns", 3)
    counts = {keys.live_shard_channel(p, "Account"): 2 for p in range(3)}
    counts[keys.live_shard_channel(1, "Wallet")] = 1
    counts["other:live:Account"] = 5
    stats = LiveStats.of(keys, counts, 0, sharded=True)
    assert stats.by_type == {"Account": 2, "Wallet": 1}
    assert stats.total == 12
