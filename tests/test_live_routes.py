"""The I/O-free part of the shared live subscription: routing, queues, the ledger."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventstore import LiveFeedFellBehind
from eventstore._core.keys import KeySchema
from eventstore._core.liveroutes import (
    CHANNEL,
    PATTERN,
    LiveInbox,
    LiveRoutes,
    SubscriptionLedger,
    Target,
)
from eventstore._core.notifications import (
    LiveChannels,
    LiveNotification,
    LiveSelection,
    parse_notification,
)
from tests.strategies import live_notes, live_selections

KEYS = KeySchema("ns", 2)


def _payload(aggregate_type: str, aggregate_id: str, event_type: str, version: int = 1) -> str:
    return json.dumps(
        {
            "aggregate_type": aggregate_type,
            "aggregate_id": aggregate_id,
            "version": version,
            "position": version,
            "partition": 0,
            "event_type": event_type,
            "event_id": "e",
            "recorded_at": 0,
        }
    )


def _wants_type(selection: LiveSelection, aggregate_type: str) -> bool:
    return selection.aggregate_types is None or aggregate_type in selection.aggregate_types


def _kept(inbox: LiveInbox) -> list[LiveNotification]:
    taken = []
    while (note := inbox.take()) is not None:
        taken.append(note)
    return taken


@given(st.lists(live_selections, min_size=1, max_size=8), live_notes, st.booleans())
def test_each_notification_reaches_exactly_the_feeds_that_keep_it(
    selections: list[LiveSelection], note: tuple[str, str, str], sharded: bool
) -> None:
    routes = LiveRoutes(LiveChannels(KEYS, sharded=sharded))
    inboxes = [LiveInbox(selection) for selection in selections]
    for inbox in inboxes:
        routes.join(inbox, ["A", "B", "C"])
    aggregate_type, aggregate_id, event_type = note
    payload = _payload(aggregate_type, aggregate_id, event_type)
    if sharded:
        channel = LiveChannels(KEYS, sharded=True).for_append(aggregate_type, aggregate_id)
        routes.route("smessage", channel, payload)
    else:  # a classic connection gets it once per channel subscription and once per pattern
        channel = KEYS.live_channel(aggregate_type)
        routes.route("message", channel, payload)
        routes.route("pmessage", channel, payload)
    announced = parse_notification(channel, payload)
    for inbox in inboxes:
        selection = inbox.selection
        keeps = _wants_type(selection, aggregate_type) and selection.keeps(announced)
        assert len(_kept(inbox)) == (1 if keeps else 0), selection


def _note(aggregate_type: str, aggregate_id: str, event_type: str) -> LiveNotification:
    return parse_notification("c", _payload(aggregate_type, aggregate_id, event_type))


@given(
    st.lists(st.tuples(st.booleans(), st.integers(0, 5), live_selections), max_size=30),
    st.booleans(),
)
def test_a_target_is_wanted_while_some_feed_needs_it(
    steps: list[tuple[bool, int, LiveSelection]], sharded: bool
) -> None:
    channels = LiveChannels(KEYS, sharded=sharded)
    routes = LiveRoutes(channels)
    open_: dict[int, LiveInbox] = {}
    wanted: set[Target] = set()
    for joining, slot, selection in steps:
        if joining and slot not in open_:
            open_[slot] = LiveInbox(selection)
            added = routes.join(open_[slot], ["A"])
            assert not set(added) & wanted
            wanted |= set(added)
        elif not joining and slot in open_:
            dropped = routes.leave(open_.pop(slot))
            assert set(dropped) <= wanted
            wanted -= set(dropped)
        needed = {t for inbox in open_.values() for t in routes.targets_of(inbox)}
        assert needed == wanted
        assert all(routes.wanted(target) for target in wanted)
        assert len(routes) == len(open_)
    for inbox in list(open_.values()):
        wanted -= set(routes.leave(inbox))
    assert wanted == set()


def test_feeds_are_filed_by_type_and_id() -> None:
    routes = LiveRoutes(LiveChannels(KEYS))
    one_room = LiveInbox(LiveSelection.of("Room", None, "r1"))
    every_room = LiveInbox(LiveSelection.of("Room", None, None))
    everything = LiveInbox(LiveSelection.of(None, None, None))
    assert routes.join(one_room) == [(CHANNEL, "ns:live:Room")]
    assert routes.join(every_room) == []  # the channel is already wanted
    assert routes.join(everything) == [(PATTERN, "ns:live:*")]
    assert routes.route("message", "ns:live:Room", _payload("Room", "r2", "Posted")) == 1
    assert routes.route("pmessage", "ns:live:Room", _payload("Room", "r1", "Posted")) == 1
    assert routes.route("message", "ns:live:Room", _payload("Room", "r1", "Posted")) == 2
    assert (len(one_room), len(every_room), len(everything)) == (1, 2, 1)
    assert routes.route("message", "ns:live:Room", b"not json") == 0
    assert routes.malformed == 1
    assert routes.leave(one_room) == []
    assert routes.leave(every_room) == [(CHANNEL, "ns:live:Room")]
    assert routes.leave(everything) == [(PATTERN, "ns:live:*")]
    assert routes.leave(everything) == []


def test_sharded_feeds_of_every_type_share_the_discovered_types() -> None:
    channels = LiveChannels(KEYS, sharded=True)
    routes = LiveRoutes(channels)
    first, second = LiveInbox(LiveSelection()), LiveInbox(LiveSelection())
    account = [(CHANNEL, c) for c in channels.for_types(["Account"])]
    wallet = [(CHANNEL, c) for c in channels.for_types(["Wallet"])]
    assert routes.join(first, ["Account"]) == account
    assert routes.join(second, ["Account"]) == []
    assert routes.discover(["Account", "Wallet"]) == wallet
    assert sorted(routes.targets_of(second)) == sorted(account + wallet)
    assert routes.leave(first) == []
    assert sorted(routes.leave(second)) == sorted(account + wallet)
    assert routes.discover(["Order"]) == []  # nobody follows every type any more


def test_a_full_inbox_drops_counts_and_signals_once() -> None:
    woken: list[int] = []
    selection = LiveSelection.of("Room", None, "r1")
    inbox = LiveInbox(selection, max_queue=2, wake=lambda: woken.append(1))
    notes = [_note("Room", "r1", "Posted") for _ in range(5)]
    for note in notes:
        inbox.put(note)
    assert woken == [1]  # only when it stopped being empty
    assert (len(inbox), inbox.dropped, inbox.fell_behind) == (2, 3, True)
    with pytest.raises(LiveFeedFellBehind) as behind:
        inbox.take()
    assert behind.value.dropped == 5
    assert behind.value.selection == inbox.selection
    assert (inbox.take(), inbox.fell_behind) == (None, False)
    inbox.put(notes[0])
    assert inbox.take() is notes[0]
    with pytest.raises(ValueError, match="max_queue"):
        LiveInbox(LiveSelection(), max_queue=0)


def test_the_ledger_waits_for_confirmations_in_order() -> None:
    wanted: set[Target] = set()
    ledger: SubscriptionLedger[str] = SubscriptionLedger(wanted.__contains__)
    room = (CHANNEL, "ns:live:Room")
    wanted.add(room)
    ledger.touch([room])
    assert ledger.wait([room], "opening")  # not asked yet
    requests = ledger.requests()
    assert (requests.subscribe, requests.unsubscribe, requests.released) == ([room], [], [])
    # the last feed leaves before the server confirmed, and another comes back at once
    wanted.discard(room)
    ledger.touch([room])
    assert ledger.requests().unsubscribe == [room]
    wanted.add(room)
    ledger.touch([room])
    assert ledger.requests().subscribe == [room]
    assert ledger.wait([room], "again")
    assert ledger.confirmed(room) == []  # subscribe
    assert ledger.confirmed(room) == []  # unsubscribe
    assert sorted(ledger.confirmed(room)) == ["again", "opening"]  # subscribe again
    assert ledger.confirmed(room) == []  # a re-subscribe after a reconnect: ignored
    assert not ledger.wait([room], "settled")


def test_a_need_undone_before_it_was_sent_releases_its_waiter() -> None:
    wanted: set[Target] = {(CHANNEL, "c")}
    ledger: SubscriptionLedger[str] = SubscriptionLedger(wanted.__contains__)
    ledger.touch(wanted)
    ledger.requests()
    ledger.confirmed((CHANNEL, "c"))
    wanted.clear()  # leaving: waits for the unsubscribe
    ledger.touch([(CHANNEL, "c")])
    assert ledger.wait([(CHANNEL, "c")], "leaving")
    wanted.add((CHANNEL, "c"))  # wanted again before anything went out
    requests = ledger.requests()
    assert (requests.subscribe, requests.unsubscribe, requests.released) == ([], [], ["leaving"])


def test_requests_that_could_not_be_sent_are_sent_again() -> None:
    wanted: set[Target] = {(CHANNEL, "c"), (PATTERN, "p")}
    ledger: SubscriptionLedger[str] = SubscriptionLedger(wanted.__contains__)
    ledger.touch(wanted)
    first = ledger.requests()
    ledger.unsent(first.subscribe, first.unsubscribe)
    assert ledger.dirty
    assert ledger.requests().subscribe == first.subscribe
    assert ledger.wait([(PATTERN, "p")], "w")
    ledger.forget("w")
    assert ledger.confirmed((PATTERN, "p")) == []


def test_a_refused_request_fails_every_waiter_and_counts_start_over() -> None:
    wanted: set[Target] = {(CHANNEL, "a"), (CHANNEL, "b")}
    ledger: SubscriptionLedger[str] = SubscriptionLedger(wanted.__contains__)
    ledger.touch(wanted)
    assert ledger.wait([(CHANNEL, "a")], "first")
    assert ledger.wait([(CHANNEL, "a"), (CHANNEL, "b")], "second")
    ledger.requests()
    assert sorted(ledger.refused()) == ["first", "second"]
    assert ledger.refused() == []
    assert ledger.settled((CHANNEL, "a"))  # nothing outstanding any more
