"""Jittered exponential backoff over one outage of a link (no I/O: callers do the waiting)."""

from __future__ import annotations

import random
import time

__all__ = ["Backoff"]

FIRST_DELAY = 0.05
MAX_DELAY = 1.0
"""Seconds between reconnection attempts: doubling from the first, capped, jittered."""


class Backoff:
    """When the current outage began, and how long to wait before the next attempt.

    ``failed(progress)`` notes a failure and returns how long the outage has lasted.
    ``progress`` is a counter of the caller's successes (reads, commits): if it moved
    since the last failure the link came back in between, so this failure starts a new
    outage, with a fresh clock and the first delay again. ``reset()`` says the same
    directly.
    """

    def __init__(self, first: float = FIRST_DELAY, cap: float = MAX_DELAY) -> None:
        self.first = first
        self.cap = cap
        self.delay = first
        self.since: float | None = None
        self.progress: int | None = None

    def reset(self) -> None:
        """The link works again: the next failure starts a new outage."""
        self.since, self.delay = None, self.first

    def failed(self, progress: int | None = None) -> float:
        """Note a failure; the seconds the current outage has lasted."""
        now = time.monotonic()
        if progress != self.progress:
            self.reset()
            self.progress = progress
        if self.since is None:
            self.since = now
        return now - self.since

    def next_delay(self) -> float:
        """The jittered wait before the next attempt (a herd of clients spreads out)."""
        delay = self.delay * (0.5 + random.random())
        self.delay = min(self.delay * 2, self.cap)
        return delay
