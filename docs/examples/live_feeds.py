"""Many live feeds, one connection. docs/reading.md quotes this program.

A chat server follows each room a client watches with a live feed of its own: a
thousand feeds here, all on the store's one Pub/Sub connection, each handed only its
room's notifications. A reader that stalls falls behind alone (``LiveFeedFellBehind``)
and starts over from the store; the others never notice.

Run it against any server: EVENTSTORE_URL=redis://127.0.0.1:6379/0 python live_feeds.py
"""

import asyncio
import contextlib
import os
import uuid

from aggregates import DomainEvent
from eventstore import AsyncEventStore, AsyncLiveFeed, LiveFeedFellBehind

URL = os.environ.get("EVENTSTORE_URL", "redis://127.0.0.1:6379/0")
ROOMS = [f"room-{i}" for i in range(1000)]


class Posted(DomainEvent):
    text: str


async def watch(
    store: AsyncEventStore, feed: AsyncLiveFeed, room_id: str, shown: list[str], wanted: int
) -> None:
    """What a websocket handler does: show each new message of one room."""
    while len(shown) < wanted:
        try:
            async for note in feed:
                shown.append((await feed.fetch(note)).data["text"])
                if len(shown) == wanted:
                    return
        except LiveFeedFellBehind:
            history = await store.read("ChatRoom", room_id)  # start over from the store
            shown[:] = [recorded.data["text"] for recorded in history]


async def main() -> None:
    async with (
        await AsyncEventStore.from_url(URL, namespace=f"feeds-{uuid.uuid4().hex[:6]}") as store,
        contextlib.AsyncExitStack() as feeds,
    ):
        live = {room: store.live("ChatRoom", aggregate_ids=room) for room in ROOMS}
        slow = store.live("ChatRoom", aggregate_ids="room-0", max_queue=3)
        for feed in [*live.values(), slow]:
            await feeds.enter_async_context(feed)  # subscribed (confirmed) from here on
        stats = await store.live_stats()
        print(f"{len(live) + 1} feeds, subscribers of the channel: {stats.by_type}")

        for room in ROOMS:  # one message per room, then five more in room-0
            await store.append("ChatRoom", room, [Posted(text=f"hello {room}")])
        for n in range(5):
            await store.append("ChatRoom", "room-0", [Posted(text=f"more {n}")])

        shown: dict[str, list[str]] = {room: [] for room in ROOMS}
        wanted = {room: 6 if room == "room-0" else 1 for room in ROOMS}
        await asyncio.gather(*(watch(store, live[r], r, shown[r], wanted[r]) for r in ROOMS))
        assert all(shown[room] == [f"hello {room}"] for room in ROOMS[1:])
        print("room-1 shows:", shown["room-1"])
        print("room-0 shows:", shown["room-0"])

        # the slow reader did not read while six messages came: its queue held three
        seen: list[str] = []
        await watch(store, slow, "room-0", seen, 6)
        print("the slow reader fell behind and re-read room-0:", seen)
        assert seen == shown["room-0"]


asyncio.run(main())
