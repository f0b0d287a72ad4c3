"""Consumer groups and projections on the asyncio front. docs/async.md quotes this program.

Two workers of the group "invoicing" share the placed orders, each one a task of the
same loop; their handler is a coroutine (an HTTP call would be awaited where this one
sleeps). One order fails on its first try and is retried. Then a projection keeps
sales per SKU in Redis, with async handlers.

Run it against any server: EVENTSTORE_URL=redis://127.0.0.1:6379/0 python async_workers.py
"""

import asyncio
import os
import uuid
from datetime import timedelta

from aggregates import DomainEvent
from eventstore import AsyncEventStore, AsyncProjection, AsyncProjectionContext, RecordedEvent

URL = os.environ.get("EVENTSTORE_URL", "redis://127.0.0.1:6379/0")
SKUS = ("sku-0", "sku-1", "sku-2")


class OrderPlaced(DomainEvent):
    sku: str
    amount_cents: int


class InvoiceServiceDown(Exception):
    """The invoicing service did not answer: worth another try."""


invoiced: dict[str, int] = {}
tries: dict[str, int] = {}


async def send_invoice(recorded: RecordedEvent) -> None:
    """Returning acknowledges the order; raising leaves it pending, to be retried."""
    order = recorded.event
    assert isinstance(order, OrderPlaced)
    tries[recorded.aggregate_id] = tries.get(recorded.aggregate_id, 0) + 1
    await asyncio.sleep(0.001)  # the call to the invoicing service
    if recorded.aggregate_id == "order-3" and tries["order-3"] == 1:
        raise InvoiceServiceDown("no answer from the invoicing service")
    invoiced.setdefault(recorded.aggregate_id, order.amount_cents)  # idempotent by order id


async def workers(store: AsyncEventStore) -> None:
    group = await store.consumer_group("invoicing", start="beginning")
    print(f"orders waiting: lag={await group.lag()} pending={await group.pending()}")
    pair = [
        group.worker(name, send_invoice, batch_size=2, claim_idle=timedelta(milliseconds=200))
        for name in ("invoicer-1", "invoicer-2")
    ]
    stats = await asyncio.gather(*(worker.run(stop_when_idle=True) for worker in pair))
    for worker, done in zip(pair, stats, strict=True):
        print(f"{worker.consumer}: {done}")
    assert sorted(invoiced) == sorted(f"order-{n}" for n in range(1, 9))
    assert (await group.lag(), await group.pending()) == (0, 0)


async def projection(store: AsyncEventStore) -> None:
    sales = AsyncProjection(store, "sales_by_sku", version=1)

    @sales.on(OrderPlaced)
    async def _placed(event: OrderPlaced, ctx: AsyncProjectionContext) -> None:
        ctx.pipe.hincrby(ctx.key("cents"), event.sku, event.amount_cents)  # queued for the commit

    await sales.run(until_caught_up=True)  # or sales.start() to follow in the background
    await sales.promote()
    cents = await sales.active_key("cents")  # follows the promoted version
    by_sku = {sku: int(await store.client.hget(cents, sku) or 0) for sku in SKUS}
    print("sales by SKU:", by_sku)
    assert sum(by_sku.values()) == sum(invoiced.values())


async def main() -> None:
    namespace = f"shop-{uuid.uuid4().hex[:8]}"  # its own namespace: the example runs again
    async with await AsyncEventStore.from_url(URL, namespace=namespace) as store:
        await asyncio.gather(
            *(
                store.append(
                    "Order", f"order-{n}", [OrderPlaced(sku=SKUS[n % 3], amount_cents=n * 100)]
                )
                for n in range(1, 9)
            )
        )
        await workers(store)
        await projection(store)


asyncio.run(main())
