"""The shipped contract suite, held against a store configuration on both fronts.

Run it as a program (``EVENTSTORE_URL`` names the server): it runs pytest on this file. Your
own suite would keep the two classes in a test file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from eventstore import EventStore
from eventstore.testing import BlockingAsyncStore, EventStoreContract

URL = os.environ.get("EVENTSTORE_URL", "redis://127.0.0.1:6379/0")


def fresh_namespace() -> str:
    return f"contract-{uuid.uuid4().hex[:8]}"


class TestMyStore(EventStoreContract):
    @pytest.fixture
    def store(self) -> Iterator[EventStore]:
        with EventStore.from_url(URL, namespace=fresh_namespace(), partitions=3) as store:
            yield store


class TestMyAsyncStore(EventStoreContract):
    @pytest.fixture
    def store(self) -> Iterator[Any]:
        with BlockingAsyncStore.from_url(URL, namespace=fresh_namespace(), partitions=3) as store:
            yield store  # every call goes through AsyncEventStore


if __name__ == "__main__":  # pytest in a fresh interpreter, as a test run would be
    sys.exit(
        subprocess.call([sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider"])
    )
