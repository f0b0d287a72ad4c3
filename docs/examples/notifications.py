"""Real-time user notifications, per user and broadcast, on the event store.

Each user has an ``Inbox`` aggregate; announcements to everybody go to one ``Broadcast``
aggregate. Appending is the source of truth; the live feed (Redis Pub/Sub) pushes a hint
to whoever is connected. A user who was offline reads the inbox itself: nothing is lost,
because the notification was never the data.

The asyncio twin, notifications over WebSocket, is in web_app.py (see docs/async.md).

Run it against any server: EVENTSTORE_URL=redis://127.0.0.1:6379/0 python notifications.py
"""

import os
import threading
import uuid

from aggregates import DomainEvent
from eventstore import EventStore, LiveFeed

URL = os.environ.get("EVENTSTORE_URL", "redis://127.0.0.1:6379/0")


class NotificationSent(DomainEvent):
    text: str


class Announced(DomainEvent):
    text: str


store = EventStore.from_url(URL, namespace="example-notify")
run = uuid.uuid4().hex[:6]
alice, bob, carol = f"alice-{run}", f"bob-{run}", f"carol-{run}"
everyone = f"all-{run}"


def notify(user: str, text: str) -> None:
    store.append("Inbox", user, [NotificationSent(text=text)])


def broadcast(text: str) -> None:
    store.append("Broadcast", everyone, [Announced(text=text)])


def listen(user: str, feed: LiveFeed, expected: int, received: list[str]) -> None:
    """What a websocket handler would do: push each notification to the user's screen."""
    for note in feed:
        recorded = feed.fetch(note)  # the hint says where; the store has the text
        received.append(recorded.data["text"])
        print(f"  [{user}] {note.aggregate_type}: {recorded.data['text']}")
        if len(received) == expected:
            feed.stop()


# One feed per connected user: their inbox and the broadcast channel, nothing else.
feeds = {
    user: store.live(["Inbox", "Broadcast"], aggregate_ids=[user, everyone])
    for user in (alice, bob)
}
inboxes: dict[str, list[str]] = {alice: [], bob: []}
expected = {alice: 3, bob: 2}
listeners = [
    threading.Thread(target=listen, args=(user, feeds[user], expected[user], inboxes[user]))
    for user in (alice, bob)
]
for listener in listeners:
    listener.start()

print("live:")
notify(alice, "Your order shipped")
notify(bob, "Bob, you have a new follower")
broadcast("Maintenance tonight at 23:00")
notify(alice, "Your order was delivered")
notify(carol, "Carol is offline: this waits in her inbox")

for listener in listeners:
    listener.join(timeout=10)
for feed in feeds.values():
    feed.close()
assert sorted(inboxes[alice]) == sorted(
    ["Your order shipped", "Maintenance tonight at 23:00", "Your order was delivered"]
)
assert sorted(inboxes[bob]) == sorted(
    ["Bob, you have a new follower", "Maintenance tonight at 23:00"]
)

# Carol connects later: her notifications come from her inbox, not from Pub/Sub.
print("carol catches up from her inbox:")
for recorded in store.read("Inbox", carol):
    print(f"  [{carol}] {recorded.data['text']} (version {recorded.version})")
print("subscribers right now:", store.live_stats().channels)
store.close()
