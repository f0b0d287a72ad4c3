"""An event-sourced user (registered, email changed) and a read model of users by email.

The read model lives in Redis next to the events. Each page of events is applied in one
atomic step together with the projection's checkpoint, so a crash can never apply an
email change twice or lose one.

The asyncio twin of the projection (AsyncProjection) is in async_workers.py
(see docs/async.md).

Run it against any server: EVENTSTORE_URL=redis://127.0.0.1:6379/0 python users_by_email.py
"""

import os
import uuid

from aggregates import Aggregate, DomainEvent, projector
from eventstore import EventStore, Projection, ProjectionContext, Repository

URL = os.environ.get("EVENTSTORE_URL", "redis://127.0.0.1:6379/0")


class UserRegistered(DomainEvent):
    name: str
    email: str


class EmailChanged(DomainEvent):
    email: str


class User(Aggregate):
    name: str = ""
    email: str = ""

    def register(self, name: str, email: str) -> None:
        self.trigger(UserRegistered(name=name, email=email))

    def change_email(self, email: str) -> None:
        if email != self.email:
            self.trigger(EmailChanged(email=email))

    @projector(UserRegistered)
    def _registered(self, event: UserRegistered) -> None:
        self.name, self.email = event.name, event.email

    @projector(EmailChanged)
    def _email_changed(self, event: EmailChanged) -> None:
        self.email = event.email


store = EventStore.from_url(URL, namespace="example-users")
users = Repository(store, User)

# The read model: email -> user id, and user id -> email (to unindex the old address).
by_email = Projection(store, "users_by_email", version=1)


@by_email.on(UserRegistered)
def _index_registered(event: UserRegistered, ctx: ProjectionContext) -> None:
    ctx.pipe.hset(ctx.key("by_email"), event.email, ctx.record.aggregate_id)
    ctx.pipe.hset(ctx.key("email_of"), ctx.record.aggregate_id, event.email)


@by_email.on(EmailChanged)
def _index_email_changed(event: EmailChanged, ctx: ProjectionContext) -> None:
    user_id = ctx.record.aggregate_id
    old = ctx.client.hget(ctx.key("email_of"), user_id)  # read first: sees earlier events
    if old is not None:
        ctx.pipe.hdel(ctx.key("by_email"), old)
    ctx.pipe.hset(ctx.key("by_email"), event.email, user_id)
    ctx.pipe.hset(ctx.key("email_of"), user_id, event.email)


def find_user_id(email: str) -> str | None:
    raw = store.client.hget(by_email.active_key("by_email"), email)
    return raw.decode() if isinstance(raw, bytes) else None


suffix = uuid.uuid4().hex[:6]  # fresh addresses, so the example can run again
ada = User()
ada.register("Ada", f"ada-{suffix}@example.com")
users.save(ada)
alan = User()
alan.register("Alan", f"alan-{suffix}@example.com")
users.save(alan)

with by_email:  # a background thread applies events as they are appended
    by_email.promote()
    assert by_email.wait_until_caught_up(timeout=10)
    print(f"ada-{suffix}@example.com ->", find_user_id(f"ada-{suffix}@example.com"))

    ada = users.get(ada.id)
    ada.change_email(f"countess-{suffix}@example.com")
    users.save(ada)
    assert by_email.wait_until_caught_up(timeout=10)

    assert find_user_id(f"ada-{suffix}@example.com") is None
    assert find_user_id(f"countess-{suffix}@example.com") == ada.id
    assert find_user_id(f"alan-{suffix}@example.com") == alan.id
    print(f"after the change: countess-{suffix}@example.com ->", ada.id)
    print("projection checkpoint:", by_email.checkpoint())

store.close()
