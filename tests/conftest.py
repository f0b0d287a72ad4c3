"""Fixtures: real Redis servers started for the session, one store per test.

Every storage test runs on redis-server from PATH (7.x here) and on the embedded 6.2
server, unless ``REDIS_URL`` points at a server to use instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any, cast

import pytest
import redis
from hypothesis import HealthCheck, settings

from eventstore import EventStore
from eventstore._redis.embedded import embedded_binary
from eventstore.testing import RedisClusterServers, RedisServer
from tests.fronts import FRONTS, Front, open_store

settings.register_profile(
    "dev", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

SERVER_NAMES = ["env"] if os.environ.get("REDIS_URL") else ["redis7", "redis62"]
CLUSTER = "cluster"
"""The server name of the session cluster, for tests marked ``also_on_cluster``."""


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    definition = metafunc.definition
    if "front" in metafunc.fixturenames and definition.get_closest_marker("both_fronts"):
        # a test of the sync front's own connections keeps to it
        sync_only = definition.get_closest_marker("sync_front") is not None
        metafunc.parametrize("front", ["sync"] if sync_only else FRONTS)
    if "server_name" in metafunc.fixturenames:
        names: list[Any] = list(SERVER_NAMES)
        if metafunc.definition.get_closest_marker("also_on_cluster"):
            names.append(pytest.param(CLUSTER, marks=pytest.mark.slow))
        metafunc.parametrize("server_name", names, scope="session")


@pytest.fixture(scope="session")
def servers() -> Iterator[dict[str, RedisServer | str]]:
    if os.environ.get("REDIS_URL"):
        yield {"env": os.environ["REDIS_URL"]}
        return
    started: dict[str, RedisServer] = {}
    try:
        for name, binary in (("redis7", "redis-server"), ("redis62", str(embedded_binary()))):
            started[name] = RedisServer(binary)
            started[name].start()
        yield dict(started)
    finally:
        for server in started.values():
            server.close()


@pytest.fixture(scope="session")
def server_url(
    servers: dict[str, RedisServer | str], server_name: str, request: pytest.FixtureRequest
) -> str:
    if server_name == CLUSTER:
        return cast(RedisClusterServers, request.getfixturevalue("cluster")).url
    server = servers[server_name]
    return server if isinstance(server, str) else server.url


@pytest.fixture
def redis_url(server_url: str, server_name: str, request: pytest.FixtureRequest) -> str:
    """The URL of a flushed server (each test starts from an empty database)."""
    if server_name == CLUSTER:
        cast(RedisClusterServers, request.getfixturevalue("cluster")).flush()
        return server_url
    client = redis.Redis.from_url(server_url)
    client.flushdb()
    client.close()
    return server_url


@pytest.fixture
def namespace() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture
def front() -> Front:
    """The front a test drives: "sync", or "async" (``AsyncEventStore`` through
    ``BlockingAsyncStore``) for both, in tests marked ``both_fronts``."""
    return "sync"


@pytest.fixture
def store(redis_url: str, namespace: str, front: Front) -> Iterator[EventStore]:
    with open_store(front, redis_url, namespace=namespace) as opened:
        yield opened


@pytest.fixture(scope="session")
def cluster() -> Iterator[RedisClusterServers]:
    """A Redis Cluster of 3 primaries with a replica each (redis-server 7 from PATH),
    started on first use, replicas in sync."""
    servers = RedisClusterServers(primaries=3, replicas=1)
    try:
        servers.start()
        yield servers
    finally:
        servers.close()


@pytest.fixture
def cluster_store(cluster: RedisClusterServers, namespace: str) -> Iterator[EventStore]:
    """A store with 6 partitions spread over the flushed cluster."""
    cluster.flush()
    with EventStore.from_url(cluster.url, namespace=namespace, partitions=6) as opened:
        yield opened


@pytest.fixture(params=["redis-server", "embedded"])
def aof_server(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    """A server of its own with AOF fsynced on every write, for stop/restart tests."""
    binary = "redis-server" if request.param == "redis-server" else str(embedded_binary())
    server = RedisServer(binary, config={"appendonly": "yes", "appendfsync": "always"})
    server.start()
    try:
        yield server
    finally:
        server.close()
