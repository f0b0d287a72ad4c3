"""Many live feeds, few connections: every feed of a store shares one Pub/Sub connection.

Channels are subscribed while a feed needs them and unsubscribed when the last one
leaves; each notification goes to the feeds that keep it, into a bounded queue per feed,
and a feed that does not keep up falls behind on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

import pytest
import redis

from eventstore import (
    AsyncEventStore,
    AsyncLiveFeed,
    EventStore,
    LiveFeed,
    LiveFeedFellBehind,
    LiveNotification,
    PermissionDenied,
)
from eventstore._core.acl import acl_tokens
from eventstore._core.notifications import LiveSelection
from tests.domain import Deposited, Opened
from tests.fronts import Front, open_store

pytestmark = pytest.mark.both_fronts


def _next(feed: LiveFeed, timeout: float = 5) -> LiveNotification:
    timer = threading.Timer(timeout, feed.stop)
    timer.start()
    try:
        return next(feed)
    finally:
        timer.cancel()


def _connections(redis_url: str) -> tuple[int, int]:
    """Clients connected to the server, and how many of them are subscribed (Pub/Sub)."""
    with redis.Redis.from_url(redis_url) as admin:
        clients = admin.client_list()
    others = [c for c in clients if c["cmd"] != "client|list"]  # not this look itself
    return len(others), sum(1 for c in others if "P" in c["flags"])


def test_feeds_of_one_store_share_one_connection(
    store: EventStore, redis_url: str, front: Front
) -> None:
    with open_store(front, redis_url, namespace=store.namespace) as other:
        other.append("Account", "warm", [Opened(owner="x")], 0)  # its command connection
        before, subscribed = _connections(redis_url)
        with (
            other.live("Account", aggregate_ids="a1") as a1,
            other.live("Account", aggregate_ids="a2") as a2,
            other.live("Wallet") as wallets,
            other.live() as everything,
        ):
            total, pubsub = _connections(redis_url)
            # one subscribed connection (a sync store may lend it its idle pooled one)
            assert (total <= before + 1, pubsub) == (True, subscribed + 1)
            store.append("Account", "a2", [Opened(owner="y")], 0)
            store.append("Account", "a1", [Opened(owner="x")], 0)
            store.append("Wallet", "w1", [Deposited(amount=1)], 0)
            assert (_next(a1).aggregate_id, _next(a2).aggregate_id) == ("a1", "a2")
            assert _next(wallets).aggregate_id == "w1"
            assert [_next(everything).aggregate_id for _ in range(3)] == ["a2", "a1", "w1"]
            assert _connections(redis_url)[1] == subscribed + 1
        total, pubsub = _connections(redis_url)
        assert (total <= before, pubsub) == (True, subscribed)


def test_a_channel_is_unsubscribed_when_its_last_feed_leaves(store: EventStore) -> None:
    account, wallet = store.keys.live_channel("Account"), store.keys.live_channel("Wallet")
    with store.live("Wallet") as wallets:
        first = store.live("Account", aggregate_ids="a1")
        second = store.live("Account", aggregate_ids="a2")
        first.open()  # the sync front opened them already, the async one opens here
        second.open()
        assert store.live_stats().channels == {account: 1, wallet: 1}  # one connection
        first.close()
        assert store.live_stats().channels == {account: 1, wallet: 1}  # the second needs it
        second.close()
        # the unsubscribe was confirmed before close() returned
        assert store.live_stats().channels == {wallet: 1}
        store.append("Account", "a1", [Opened(owner="x")], 0)
        store.append("Wallet", "w1", [Deposited(amount=1)], 0)
        assert _next(wallets).aggregate_id == "w1"  # the connection stayed for the others
        with store.live("Account") as again:  # subscribed anew, confirmed before it returns
            store.append("Account", "a1", [Deposited(amount=1)], 1)
            note = _next(again)
            assert (note.aggregate_id, note.version) == ("a1", 2)
    assert store.live_stats().channels == {}  # the last feed took the connection with it


def test_a_feed_that_does_not_read_falls_behind_alone(store: EventStore) -> None:
    with (
        store.live("Account", aggregate_ids="a1", max_queue=5) as idle,
        store.live("Account", max_queue=100) as busy,
    ):
        for version in range(1, 21):
            store.append("Account", "a1", [Deposited(amount=version)], version - 1)
        assert [_next(busy).version for _ in range(20)] == list(range(1, 21))
        assert idle.fell_behind
        with pytest.raises(LiveFeedFellBehind) as behind:
            next(idle)
        assert behind.value.selection == LiveSelection.of(["Account"], None, ["a1"])
        assert behind.value.dropped == 20  # 15 that did not fit, 5 discarded from the queue
        assert "aggregate ids a1" in str(behind.value)
        # re-read from the store, then go on: the feed stayed subscribed
        assert len(store.read("Account", "a1")) == 20
        assert not idle.fell_behind
        store.append("Account", "a1", [Deposited(amount=21)], 20)
        assert _next(idle).version == 21
        assert _next(busy).version == 21


def test_a_feed_closed_from_another_thread_leaves_the_others_alone(store: EventStore) -> None:
    with store.live("Account", aggregate_ids="a2") as stays:
        leaving = store.live("Account", aggregate_ids="a1")
        threading.Timer(0.2, leaving.close).start()
        assert list(leaving) == []
        store.append("Account", "a2", [Opened(owner="y")], 0)
        assert _next(stays).aggregate_id == "a2"


def test_a_refused_channel_fails_its_feed_and_spares_the_others(
    redis_url: str, namespace: str, front: Front
) -> None:
    user = f"live-{namespace}"
    with redis.Redis.from_url(redis_url) as admin:
        version = str(admin.info("server")["redis_version"])
        major, minor = (int(part) for part in version.split(".")[:2])
        tokens = [t for t in acl_tokens(namespace, redis_version=(major, minor)) if t[0] != "&"]
        admin.execute_command(
            "ACL", "SETUSER", user, "reset", "on", f">{user}-pw", *tokens,
            f"&{namespace}:live:Account",
        )  # fmt: skip
        try:
            url = redis_url.replace("redis://", f"redis://{user}:{user}-pw@")
            with (
                open_store(front, url, namespace=namespace) as store,
                store.live("Account") as accounts,
            ):
                with pytest.raises(PermissionDenied) as denied, store.live("Wallet"):
                    pass
                assert denied.value.channel == f"{namespace}:live:Wallet"
                store.append("Account", "a1", [Opened(owner="x")], 0)
                assert _next(accounts).aggregate_id == "a1"
                with store.live("Account", aggregate_ids="a1") as again:  # the hub goes on
                    store.append("Account", "a1", [Deposited(amount=1)], 1)
                    assert _next(again).version == 2
        finally:
            admin.acl_deluser(user)


def test_max_queue_must_be_positive(store: EventStore) -> None:
    with pytest.raises(ValueError, match="max_queue"):
        store.live("Account", max_queue=0)


def test_feeds_opened_from_many_threads_at_once_share_one_connection(
    redis_url: str, namespace: str
) -> None:
    ids = [f"a{i}" for i in range(50)]
    got: dict[str, list[int]] = {}
    ready = threading.Barrier(len(ids) + 1)

    def follow(store: EventStore, aggregate_id: str) -> None:
        with store.live(["Account", "Wallet"], aggregate_ids=aggregate_id) as feed:
            ready.wait()
            got[aggregate_id] = [_next(feed).version for _ in range(2)]

    with EventStore.from_url(redis_url, namespace=namespace) as store:
        _, subscribed = _connections(redis_url)
        threads = [threading.Thread(target=follow, args=(store, i)) for i in ids]
        for thread in threads:
            thread.start()
        ready.wait()
        assert _connections(redis_url)[1] == subscribed + 1
        for version in (1, 2):
            for aggregate_id in ids:
                store.append("Account", aggregate_id, [Deposited(amount=1)], version - 1)
        for thread in threads:
            thread.join(10)
    assert got == {aggregate_id: [1, 2] for aggregate_id in ids}


# -- the asyncio front, at scale ---------------------------------------------------------------


def test_two_thousand_async_feeds_use_one_subscription_connection(
    redis_url: str, namespace: str
) -> None:
    ids = [f"room-{i}" for i in range(2000)]

    async def main() -> None:
        async with await AsyncEventStore.from_url(redis_url, namespace=namespace) as store:
            await store.append("Account", "warm", [Opened(owner="x")], 0)
            before, subscribed = _connections(redis_url)
            feeds = [store.live("Account", aggregate_ids=i, max_queue=10) for i in ids]
            async with contextlib.AsyncExitStack() as stack:
                # opened all at once: each returns once the (one) channel is confirmed
                await asyncio.gather(*(stack.enter_async_context(feed) for feed in feeds))
                total, pubsub = _connections(redis_url)
                assert total - before <= 2  # the store's one command connection is counted
                assert pubsub - subscribed == 1
                for version in (1, 2):
                    await asyncio.gather(
                        *(store.append("Account", i, [Opened(owner=i)], version - 1) for i in ids)
                    )
                for aggregate_id, feed in zip(ids, feeds, strict=True):
                    notes = [await asyncio.wait_for(anext(feed), 5) for _ in range(2)]
                    assert [(n.aggregate_id, n.version) for n in notes] == [
                        (aggregate_id, 1),
                        (aggregate_id, 2),
                    ]
                    assert not await feed.wait_for_any(0)  # nothing else came
                assert _connections(redis_url)[0] - before <= 2
            assert _connections(redis_url) == (before, subscribed)

    asyncio.run(main())


def test_a_cancelled_reader_closes_its_feed_and_spares_the_others(
    redis_url: str, namespace: str
) -> None:
    async def read_forever(feed: AsyncLiveFeed, opened: asyncio.Event) -> None:
        async with feed:
            opened.set()
            async for _ in feed:
                pass

    async def main() -> None:
        async with await AsyncEventStore.from_url(redis_url, namespace=namespace) as store:
            wallet = store.keys.live_channel("Wallet")
            async with store.live("Account", aggregate_ids="a2") as stays:
                opened = asyncio.Event()
                reader = asyncio.create_task(read_forever(store.live("Wallet"), opened))
                await opened.wait()
                assert wallet in (await store.live_stats()).channels
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
                assert wallet not in (await store.live_stats()).channels
                # cancelled while it waits for its subscription: it leaves again
                opening = asyncio.create_task(store.live("Wallet").open())
                await asyncio.sleep(0)
                opening.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await opening
                deadline = time.monotonic() + 5
                while wallet in (await store.live_stats()).channels:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.01)
                await store.append("Account", "a2", [Opened(owner="y")], 0)
                note = await asyncio.wait_for(anext(stays), 5)
                assert note.aggregate_id == "a2"

    asyncio.run(main())
