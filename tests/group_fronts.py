"""One consumer-group test body for both fronts, run inside ``asyncio.run``.

The body is async code. On the sync front a call returns its result at once (blocking
the loop for one round trip), on the async front it is awaited: ``await
ready(group.lag())`` is either front's ``lag``. Handlers are written once as ``async
def``; ``handler`` gives the sync front a plain function that runs one on a loop of the
worker's own thread, and ``run`` runs a sync worker in a thread, so the body's other
tasks (a ``stop()``, an outage) go on while it works.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from eventstore import AsyncEventStore, EventStore, RecordedEvent, WorkerStats
from tests.domain import Deposited
from tests.fronts import Front

AsyncHandler = Callable[[RecordedEvent], Coroutine[Any, Any, None]]


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


def handler(front: Front, handle: AsyncHandler) -> Any:
    """``handle`` as a worker handler of ``front``: itself on the async front, a function
    running it to completion (on a loop of the calling thread) on the sync front."""
    if front == "async":
        return handle

    def call(recorded: RecordedEvent) -> None:
        asyncio.run(handle(recorded))

    return call


async def run(worker: Any, **options: Any) -> WorkerStats:
    """``worker.run(**options)`` of either front: awaited, or in a thread of its own."""
    if inspect.iscoroutinefunction(worker.run):
        stats: WorkerStats = await worker.run(**options)
        return stats
    return await asyncio.to_thread(worker.run, **options)


async def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll ``condition`` without blocking the loop; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def append_many(store: Any, count: int, prefix: str = "a") -> list[str]:
    """One ``Deposited`` per aggregate ``<prefix><i>`` (either front); the event ids."""
    ids = [f"{prefix}{i}-event" for i in range(count)]
    for i, event_id in enumerate(ids):
        appended = store.append(
            "Account", f"{prefix}{i}", [Deposited(amount=i + 1)], 0, event_ids=[event_id]
        )
        await ready(appended)
    return ids
