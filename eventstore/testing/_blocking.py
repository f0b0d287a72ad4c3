"""``BlockingAsyncStore``: an ``AsyncEventStore`` driven through the sync API.

It lets the suites written against ``EventStore`` (the contract suite, property tests,
state machines) hold the async front to the same rules: every call is run on an event
loop in a thread of its own, so calls from several threads at once become concurrent
tasks on that loop, pipelined as any async application's would be. Coroutines are
awaited, async generators drained into lists, and what the async front hands out
(subscriptions and live feeds for ``async with`` / ``async for``, groups, workers) gets a
sync face the same way; anything else is passed through.

::

    with BlockingAsyncStore.from_url(url, namespace="contract") as store:
        store.append("Account", "acc-1", [Deposited(amount=5)], 0)   # AsyncEventStore.append
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Self, TypeVar

from eventstore._async.store import AsyncEventStore

__all__ = ["BlockingAsyncStore", "LoopThread"]

T = TypeVar("T")


class LoopThread:
    """An event loop running in a daemon thread; ``run`` a coroutine on it and wait."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """The coroutine's result (or its exception), run on the loop."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def close(self) -> None:
        """Stop the loop and its thread, letting what is closing finish first (a dropped
        connection's transport closes in a callback of the loop's next turns)."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.run_until_complete(self._settle())
        self.loop.close()

    async def _settle(self) -> None:
        await self.loop.shutdown_asyncgens()
        for _ in range(3):  # connection_lost runs a turn or two after close()
            await asyncio.sleep(0)


async def _drain(iterator: AsyncIterator[T]) -> list[T]:
    return [item async for item in iterator]


class _Blocking:
    """The sync face of an async object: its coroutine methods awaited on ``runner``."""

    def __init__(self, runner: LoopThread, target: Any) -> None:
        self.runner = runner
        self.target = target

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.target, name)
        if not callable(value):
            return value
        return self._blocking(value)

    def _blocking(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            return self._face(method(*args, **kwargs))

        return call

    def _face(self, result: Any) -> Any:
        if inspect.iscoroutine(result):
            return self._face(self.runner.run(result))
        if inspect.isasyncgen(result):
            return iter(self.runner.run(_drain(result)))
        if hasattr(result, "__aenter__") or hasattr(result, "__anext__"):
            return _BlockingResource(self.runner, result)
        if type(result).__module__.startswith("eventstore._async."):  # a group, a worker...
            return _Blocking(self.runner, result)
        return result


class _BlockingResource(_Blocking):
    """A subscription or feed of the async front, used with ``with`` and ``for``."""

    def __enter__(self) -> Self:
        self.runner.run(self.target.__aenter__())
        return self

    def __exit__(self, *exc: object) -> None:
        self.runner.run(self.target.__aexit__(*exc))

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> Any:
        try:
            return self._face(self.runner.run(self.target.__anext__()))
        except StopAsyncIteration:
            raise StopIteration from None

    def close(self) -> None:
        """``aclose()`` the async object."""
        self.runner.run(self.target.aclose())


class BlockingAsyncStore(_Blocking):
    """The sync face of an ``AsyncEventStore`` (for tests: see the module docstring)."""

    def __init__(self, runner: LoopThread, store: AsyncEventStore) -> None:
        super().__init__(runner, store)
        self.async_store = store

    @property
    def client(self) -> Any:
        """The store's asyncio client, with the same sync face (for tests that look at
        Redis directly)."""
        return _Blocking(self.runner, self.async_store.client)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """``AsyncEventStore.from_url(url, **options)`` on a loop thread of its own."""
        runner = LoopThread()
        try:
            return cls(runner, runner.run(AsyncEventStore.from_url(url, **options)))
        except BaseException:
            runner.close()
            raise

    def repository(self, aggregate_class: type[Any], **options: Any) -> Any:
        """An ``AsyncRepository`` of this store with the same sync face (``save``, ``get``
        awaited on the loop)."""
        from eventstore._async.repository import AsyncRepository

        return _Blocking(self.runner, AsyncRepository(self.async_store, aggregate_class, **options))

    def close(self) -> None:
        """Close the store, then stop its loop."""
        try:
            self.runner.run(self.async_store.aclose())
        finally:
            self.runner.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
