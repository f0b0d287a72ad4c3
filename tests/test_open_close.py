"""Opening a store that fails (here: a partition count the namespace does not have)
leaves no connection behind on the server."""

from __future__ import annotations

import uuid

import pytest
import redis

from eventstore import ConfigurationError
from tests.fronts import Front, open_store

pytestmark = pytest.mark.both_fronts


def _connected_names(url: str) -> list[str]:
    with redis.Redis.from_url(url) as probe:
        return [str(client.get("name", "")) for client in probe.client_list()]


def test_a_store_that_fails_to_open_closes_its_connections(
    redis_url: str, namespace: str, front: Front
) -> None:
    with open_store(front, redis_url, namespace=namespace, partitions=1):
        pass
    name = f"failing-{uuid.uuid4().hex[:8]}"
    with pytest.raises(ConfigurationError) as failed:
        open_store(front, redis_url, namespace=namespace, partitions=2, client_name=name)
    # the traceback (which keeps the half-made store's client alive) is still held here:
    # only an explicit close can have ended the connection
    assert failed.traceback
    assert name not in _connected_names(redis_url)
