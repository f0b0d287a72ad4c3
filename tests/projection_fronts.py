"""One projection test body for both fronts, run inside ``asyncio.run``.

The body is async code; on the sync front each call simply returns its result (and
blocks the loop, which has nothing else to do), on the async front it is awaited:
``await ready(projection.run(until_caught_up=True))`` is either front's ``run``.
Handlers that only queue writes on ``ctx.pipe`` read the same on both fronts, so
``handle`` registers one plain function as either front's handler.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

from aggregates import DomainEvent
from eventstore import AsyncEventStore, AsyncProjection, EventStore, Projection
from tests.domain import Deposited, Opened, Withdrawn
from tests.fronts import Front

PROJECTIONS: dict[Front, Any] = {"sync": Projection, "async": AsyncProjection}


async def ready(value: Any) -> Any:
    """What a call of either front gave: awaited if it is awaitable, else as it is."""
    return await value if inspect.isawaitable(value) else value


@contextlib.asynccontextmanager
async def opened(front: Front, url: str, **options: Any) -> AsyncIterator[Any]:
    """A store of ``front`` (``from_url``'s options), closed on exit."""
    if front == "sync":
        with EventStore.from_url(url, **options) as store:
            yield store
    else:
        async with await AsyncEventStore.from_url(url, **options) as store:
            yield store


@contextlib.asynccontextmanager
async def running(*projections: Any) -> AsyncIterator[None]:
    """The projections started in the background, stopped on exit: ``async with`` on the
    async front, ``with`` on the sync one."""
    async with contextlib.AsyncExitStack() as stack:
        for projection in projections:
            if isinstance(projection, AsyncProjection):
                await stack.enter_async_context(projection)
            else:
                stack.enter_context(projection)
        yield


def handle(
    projection: Any, event_class: type[DomainEvent], write: Callable[[Any, Any], object]
) -> None:
    """Register ``write(event, ctx)``, which only queues on ``ctx.pipe``, as the handler of
    ``event_class``: itself on the sync front, inside an ``async def`` on the async one."""
    if isinstance(projection, AsyncProjection):

        async def handler(event: Any, ctx: Any) -> None:
            write(event, ctx)

        projection.on(event_class)(handler)
    else:
        projection.on(event_class)(write)


def balances(front: Front, store: Any, **options: Any) -> Any:
    """Balance per account and an owner index (``AsyncProjection``'s options)."""
    projection = PROJECTIONS[front](store, "balances", **options)

    def opened(event: Opened, ctx: Any) -> None:
        ctx.pipe.hset(ctx.key("owner"), ctx.record.aggregate_id, event.owner)

    def deposited(event: Deposited, ctx: Any) -> None:
        ctx.pipe.hincrby(ctx.key("balance"), ctx.record.aggregate_id, event.amount)

    def withdrawn(event: Withdrawn, ctx: Any) -> None:
        ctx.pipe.hincrby(ctx.key("balance"), ctx.record.aggregate_id, -event.amount)

    handle(projection, Opened, opened)
    handle(projection, Deposited, deposited)
    handle(projection, Withdrawn, withdrawn)
    return projection


async def balance(store: Any, projection: Any, account: str) -> int:
    """The balance of ``account`` in the version that serves reads."""
    key = await ready(projection.active_key("balance"))
    return int(await ready(store.client.hget(key, account)) or 0)
