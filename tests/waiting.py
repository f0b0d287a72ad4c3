"""Test helpers for servers that go away and come back."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import redis

T = TypeVar("T")


def retrying(fn: Callable[[], T], attempts: int = 200) -> T:
    """Call ``fn`` until the server answers; re-sending the same event ids is idempotent."""
    for _ in range(attempts):
        try:
            return fn()
        except redis.ConnectionError:
            time.sleep(0.05)
    raise AssertionError("the server did not come back")


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
