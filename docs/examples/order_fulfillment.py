"""Order fulfillment with competing workers, a flaky payment step and a dead-letter queue.

Two workers of the consumer group "fulfillment" share the placed orders. The payment
provider times out now and then (a retry fixes it); one card is always declined, so
its order is parked in the dead-letter queue after three attempts. An operator reads
the error, fixes the cause and replays it. The run is deterministic.

The asyncio twin, workers as tasks with async handlers, is async_workers.py
(see docs/async.md).

Run it against any server: EVENTSTORE_URL=redis://127.0.0.1:6379/0 python order_fulfillment.py
"""

import os
import threading
import uuid
from datetime import timedelta

from aggregates import DomainEvent
from eventstore import EventStore, RecordedEvent

URL = os.environ.get("EVENTSTORE_URL", "redis://127.0.0.1:6379/0")
BLOCKED_CARD = "4000-0000-0000-0002"


class OrderPlaced(DomainEvent):
    sku: str
    amount_cents: int
    card: str


class PaymentTimeout(Exception):
    """The provider did not answer in time: worth another try."""


class CardDeclined(Exception):
    """The provider refused the card: retrying will not help."""


class PaymentProvider:
    """A stand-in for a payment API: the first try of every fourth order times out,
    and one card is blocked."""

    def __init__(self) -> None:
        self.tries: dict[str, int] = {}
        self.blocked = {BLOCKED_CARD}
        self.charged: dict[str, int] = {}
        self.lock = threading.Lock()

    def charge(self, order_id: str, card: str, amount_cents: int) -> None:
        with self.lock:
            self.tries[order_id] = self.tries.get(order_id, 0) + 1
            if self.tries[order_id] == 1 and int(order_id.rsplit("-", 1)[1]) % 4 == 0:
                raise PaymentTimeout(f"provider timed out charging {order_id}")
            if card in self.blocked:
                raise CardDeclined(f"card {card} declined for {order_id}")
            # Idempotent by order id: a redelivered order is never charged twice.
            self.charged.setdefault(order_id, amount_cents)


# Each run uses its own namespace, so the example can run again on the same server.
store = EventStore.from_url(URL, namespace=f"shop-{uuid.uuid4().hex[:8]}", partitions=2)
for number in range(1, 13):
    card = BLOCKED_CARD if number == 7 else "4242-4242-4242-4242"
    placed = OrderPlaced(sku=f"sku-{number % 4}", amount_cents=1000 + number, card=card)
    store.append("Order", f"order-{number}", [placed], expected_version=0)

group = store.consumer_group("fulfillment", start="beginning")
print(f"orders waiting: lag={group.lag()} pending={group.pending()}")

provider = PaymentProvider()
shipped: list[str] = []


def fulfill(recorded: RecordedEvent) -> None:
    """Charge, then ship. Raising leaves the order pending: it is retried later."""
    order = recorded.event
    assert isinstance(order, OrderPlaced)
    provider.charge(recorded.aggregate_id, order.card, order.amount_cents)
    shipped.append(recorded.aggregate_id)


workers = [
    group.worker(name, fulfill, max_deliveries=3, claim_idle=timedelta(milliseconds=200))
    for name in ("packer-1", "packer-2")
]
threads = [threading.Thread(target=w.run, kwargs={"stop_when_idle": True}) for w in workers]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()

for worker in workers:
    print(f"{worker.consumer}: {worker.stats}")
print(f"shipped {len(shipped)} orders; lag={group.lag()} pending={group.pending()}")

for dead in group.dead_letters():
    what = dead.recorded.aggregate_id if dead.recorded else dead.unreadable
    print(
        f"dead letter {dead.id}: {what} after {dead.deliveries} "
        f"deliveries, last by {dead.consumer}: {dead.error}"
    )

# The operator calls the bank, the card is unblocked: send the order back through.
provider.blocked.clear()
print(f"replayed {group.replay_dead_letters()} dead letter(s)")
group.worker("packer-1", fulfill, claim_idle=timedelta(milliseconds=200)).run(stop_when_idle=True)

print(f"shipped {len(set(shipped))} distinct orders, charged {len(provider.charged)}")
assert sorted(provider.charged) == sorted(f"order-{n}" for n in range(1, 13))
assert group.dead_letters() == []
assert (group.lag(), group.pending()) == (0, 0)
store.close()
