"""The shipped contract suite, run against our store with 1 and with 3 partitions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from eventstore import EventStore
from eventstore.testing import EventStoreContract


class TestOnePartition(EventStoreContract):
    pass


class TestThreePartitions(EventStoreContract):
    @pytest.fixture
    def store(self, redis_url: str, namespace: str) -> Iterator[EventStore]:
        with EventStore.from_url(redis_url, namespace=namespace, partitions=3) as opened:
            yield opened
