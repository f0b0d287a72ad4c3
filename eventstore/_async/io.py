"""The event loop as the async flows see it; ``eventstore._redis.io`` is its sync twin.

Flow modules never import ``asyncio``: what they need of it is here, under the names the
sync twin gives to threads and blocking calls, so one source serves both fronts.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

__all__ = [
    "pass_turn",
    "AsyncBackground",
    "Wake",
    "Handler",
    "AsyncEvent",
    "Attempt",
    "close_at_exit",
    "opened",
    "run_blocking",
    "sleep",
]

T = TypeVar("T")
P = ParamSpec("P")

Attempt = Callable[[], Awaitable[T]]
"""Something to try (again): a coroutine function of no arguments."""

Wake = Callable[[float], Awaitable[object]]
"""Wait up to a timeout for a wake-up hint (a live notification)."""

Handler = Callable[[T], Awaitable[object]]
"""A callback given one value (a worker's event handler): a coroutine function here."""


class AsyncEvent:
    """``asyncio.Event`` with ``threading.Event``'s ``wait(timeout) -> bool``.

    ``set()`` may also be called from another thread (it is handed to the loop).
    """

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def is_set(self) -> bool:
        """Whether the event is set."""
        return self._event.is_set()

    def set(self) -> None:
        """Set the event, waking every waiter."""
        loop = self._loop
        if loop is not None and loop.is_running():
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is not loop:
                loop.call_soon_threadsafe(self._event.set)
                return
        self._event.set()

    def clear(self) -> None:
        """Unset the event."""
        self._event.clear()

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait until set, at most ``timeout`` seconds; whether it is set."""
        self._loop = asyncio.get_running_loop()
        if self._event.is_set():
            return True
        if timeout is None:
            await self._event.wait()
            return True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._event.wait()
        return self._event.is_set()


async def sleep(seconds: float) -> None:
    """Pause this task for ``seconds``."""
    await asyncio.sleep(seconds)


async def run_blocking(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``function(*args)`` in a worker thread (a subprocess start, a file lock)."""
    return await asyncio.to_thread(function, *args, **kwargs)


def opened(resource: T) -> T:
    """``resource`` as it is: an async subscription or feed opens on ``async with`` (or on
    its first ``__anext__``), where it can await; the sync twin opens it here."""
    return resource


def close_at_exit(store: Any, server: Any, client_name: str) -> None:
    """At interpreter exit, stop the embedded ``server`` if no store other than this one
    uses it (the loop that could await ``store.aclose()`` is gone by then)."""

    def stop() -> None:
        if store._embedded is not None:
            store._embedded = None
            server.shutdown_if_unused(client_name)

    atexit.register(stop)


class AsyncBackground:
    """``target()`` run as a task of the running loop; the sync twin runs it in a thread.

    The task is kept here (the loop holds only a weak reference to it).
    """

    def __init__(self, target: Callable[[], Awaitable[object]], *, name: str) -> None:
        self._target = target
        self._name = name
        self._task: asyncio.Task[object] | None = None

    def start(self) -> None:
        """Start the task (call it from a coroutine: it needs the running loop)."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self._name)

    async def _run(self) -> object:
        return await self._target()

    def alive(self) -> bool:
        """Whether the task was started and has not ended yet."""
        return self._task is not None and not self._task.done()

    async def join(self, timeout: float | None = None) -> None:
        """Wait up to ``timeout`` seconds for the task to end (never cancelled here);
        returns at once when called from the task itself. May be awaited on another
        loop (another thread), as the sync twin may be joined from any thread."""
        task = self._task
        if task is None or task.done() or task is asyncio.current_task():
            return
        home = task.get_loop()
        if home is asyncio.get_running_loop():
            await asyncio.wait({task}, timeout=timeout)
            return
        waiting = asyncio.run_coroutine_threadsafe(asyncio.wait({task}, timeout=timeout), home)
        await asyncio.wrap_future(waiting)


async def pass_turn() -> None:
    """Let the event loop run once: commands queued on the multiplexer are written in
    the loop's next turn, so a task about to compute for a while lets them go first."""
    await asyncio.sleep(0)
