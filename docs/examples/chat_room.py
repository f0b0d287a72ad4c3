"""A chat room: the history comes from the aggregate, new messages arrive live.

The classic Pub/Sub chat loses whatever was said before you joined; here every message is
an event of the room's aggregate, so joining means loading the room (its history) and
then following the live feed. Subscribe first, load second, and skip live messages the
history already had: nothing falls in the gap between the two.

The asyncio twin, a chat room over WebSocket, is in web_app.py (see docs/async.md).

Run it against any server: EVENTSTORE_URL=redis://127.0.0.1:6379/0 python chat_room.py
"""

import os
import threading
import time
import uuid

from aggregates import Aggregate, DomainEvent, projector
from eventstore import ConcurrencyError, EventStore, Repository

URL = os.environ.get("EVENTSTORE_URL", "redis://127.0.0.1:6379/0")


class MessagePosted(DomainEvent):
    author: str
    text: str


class ChatRoom(Aggregate):
    messages: list[str] = []  # noqa: RUF012 - state defaults are copied per instance

    def post(self, author: str, text: str) -> None:
        if not text.strip():
            raise ValueError("empty message")
        self.trigger(MessagePosted(author=author, text=text))

    @projector(MessagePosted)
    def _posted(self, event: MessagePosted) -> None:
        self.messages = [*self.messages, f"{event.author}: {event.text}"]


store = EventStore.from_url(URL, namespace="example-chat")
rooms = Repository(store, ChatRoom)
room_id = f"lobby-{uuid.uuid4().hex[:6]}"


def say(author: str, text: str) -> None:
    """Post with optimistic concurrency: reload and retry if someone spoke first."""
    for _ in range(10):
        room = rooms.get(room_id) if store.version_of("ChatRoom", room_id) else ChatRoom(room_id)
        room.post(author, text)
        try:
            rooms.save(room)
            return
        except ConcurrencyError:
            continue
    raise RuntimeError("the room is too busy")


say("ann", "hello, anyone here?")
say("bob", "hi ann!")

# Joining: subscribe to the room's live feed, then load the history.
with store.live("ChatRoom", aggregate_ids=room_id) as feed:
    room = rooms.get(room_id)
    print(f"history of {room_id} (version {room.version}):")
    for line in room.messages:
        print("  " + line)

    def others_talk() -> None:
        time.sleep(0.2)
        say("bob", "welcome, cid")
        say("ann", "the live part starts now")

    talker = threading.Thread(target=others_talk)
    talker.start()
    print("live:")
    live: list[str] = []
    for note in feed:
        if note.version <= room.version:
            continue  # already in the history we loaded
        event = feed.fetch(note).event
        assert isinstance(event, MessagePosted)
        live.append(f"{event.author}: {event.text}")
        print("  " + live[-1])
        if len(live) == 2:
            break
    talker.join()

assert live == ["bob: welcome, cid", "ann: the live part starts now"]
assert rooms.get(room_id).messages[-2:] == live
store.close()
