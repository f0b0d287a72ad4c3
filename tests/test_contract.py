"""The shipped contract suite, run against both fronts with 1 and with 3 partitions
(and with 3 on the session cluster)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from eventstore import EventStore
from eventstore.testing import EventStoreContract
from tests.fronts import Front, open_store

pytestmark = pytest.mark.all_servers


class TestOnePartition(EventStoreContract):
    pass


@pytest.mark.also_on_cluster
class TestThreePartitions(EventStoreContract):
    @pytest.fixture
    def store(self, redis_url: str, namespace: str) -> Iterator[EventStore]:
        with EventStore.from_url(redis_url, namespace=namespace, partitions=3) as opened:
            yield opened


class _AsyncFront:
    front: Front = "async"
    partitions = 1

    @pytest.fixture
    def store(self, redis_url: str, namespace: str) -> Iterator[EventStore]:
        opened = open_store(self.front, redis_url, namespace=namespace, partitions=self.partitions)
        with opened:
            yield opened


class TestAsyncOnePartition(_AsyncFront, EventStoreContract):
    pass


@pytest.mark.also_on_cluster
class TestAsyncThreePartitions(_AsyncFront, EventStoreContract):
    partitions = 3
