"""Threads and blocking calls as the sync flows see them; the twin of ``eventstore._async.io``."""

from __future__ import annotations

import atexit
import threading
import time
from collections.abc import Callable
from typing import Any, ParamSpec, Protocol, TypeVar

__all__ = [
    "pass_turn",
    "Background",
    "Wake",
    "Handler",
    "Attempt",
    "Event",
    "close_at_exit",
    "opened",
    "run_blocking",
    "sleep",
]

T = TypeVar("T")


class _Opens(Protocol):
    def open(self) -> None: ...


R = TypeVar("R", bound=_Opens)
P = ParamSpec("P")

Attempt = Callable[[], T]
"""Something to try (again): a function of no arguments."""

Wake = Callable[[float], object]
"""Wait up to a timeout for a wake-up hint (a live notification)."""

Handler = Callable[[T], object]
"""A callback given one value (a worker's event handler): a plain function here."""


Event = threading.Event
"""Set from any thread; ``wait(timeout)`` returns whether it is set."""


def sleep(seconds: float) -> None:
    """Pause this thread for ``seconds``."""
    time.sleep(seconds)


def run_blocking(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``function(*args)``, here (the async twin runs it in a worker thread)."""
    return function(*args, **kwargs)


def opened(resource: R) -> R:
    """``resource`` opened (subscribed, its position read) before it is returned: a sync
    subscription or feed sees everything after the call that made it. The async twin
    opens on ``async with`` instead, where it can await."""
    resource.open()
    return resource


def close_at_exit(store: Any, server: Any, client_name: str) -> None:
    """Close ``store`` at interpreter exit (stopping the embedded ``server`` if unused)."""
    del server, client_name  # close() knows them
    atexit.register(store.close)


class Background:
    """``target()`` run in a daemon thread; the twin of ``eventstore._async.io.AsyncBackground``."""

    def __init__(self, target: Callable[[], object], *, name: str) -> None:
        self._target = target
        self._name = name
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread."""
        self._thread = threading.Thread(target=self._target, name=self._name, daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        """Whether the thread was started and has not ended yet."""
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        """Wait up to ``timeout`` seconds for the thread to end; returns at once when
        called from the thread itself."""
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return
        thread.join(timeout)


def pass_turn() -> None:
    """Nothing to do: a sync write is on the wire when ``send`` returns (the async twin
    lets the event loop write what was queued)."""
