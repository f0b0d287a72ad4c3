"""Fixtures: real Redis servers started for the session, one store per test.

Every storage test runs on the oldest and the newest server of the matrix (Redis 6.2 and
Valkey 9.1, see ``tests/servers.py``); tests marked ``all_servers`` (the suites where
servers differ: storage, subscriptions, live feeds, groups, projections, CLI) on all four.
``REDIS_URL`` points every one of them at a server of your own instead.
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
from eventstore.testing import RedisClusterServers, RedisServer
from tests.fronts import FRONTS, Front, open_store
from tests.servers import ALL_SERVERS, server_binary

settings.register_profile(
    "dev", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

SERVER_NAMES = ["env"] if os.environ.get("REDIS_URL") else ["redis62", "valkey9"]
"""The servers every storage test runs on."""
MATRIX = ["env"] if os.environ.get("REDIS_URL") else list(ALL_SERVERS)
"""The servers of tests marked ``all_servers``."""
CLUSTER = "cluster"
"""The server name of the session cluster, for tests marked ``also_on_cluster``."""
VALKEY_CLUSTER = "valkey-cluster"
"""The session cluster of Valkey nodes, for tests marked both ``also_on_cluster`` and
``all_servers``."""
CLUSTERS = {CLUSTER: "cluster", VALKEY_CLUSTER: "valkey_cluster"}
"""Cluster server names and their fixtures."""


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    definition = metafunc.definition
    if "front" in metafunc.fixturenames and definition.get_closest_marker("both_fronts"):
        # a test of the sync front's own connections keeps to it
        sync_only = definition.get_closest_marker("sync_front") is not None
        metafunc.parametrize("front", ["sync"] if sync_only else FRONTS)
    if "server_name" in metafunc.fixturenames:
        everywhere = metafunc.definition.get_closest_marker("all_servers") is not None
        names: list[Any] = list(MATRIX if everywhere else SERVER_NAMES)
        if metafunc.definition.get_closest_marker("also_on_cluster"):
            names.append(pytest.param(CLUSTER, marks=pytest.mark.slow))
            if everywhere and not os.environ.get("REDIS_URL"):
                names.append(pytest.param(VALKEY_CLUSTER, marks=pytest.mark.slow))
        metafunc.parametrize("server_name", names, scope="session")


class _Servers:
    """The matrix servers, each started on first use and stopped with the session."""

    def __init__(self) -> None:
        self.started: dict[str, RedisServer] = {}

    def url(self, name: str) -> str:
        if name == "env":
            return os.environ["REDIS_URL"]
        if name not in self.started:
            server = RedisServer(server_binary(name))
            server.start()
            self.started[name] = server
        return self.started[name].url

    def close(self) -> None:
        for server in self.started.values():
            server.close()


@pytest.fixture(scope="session")
def servers() -> Iterator[_Servers]:
    matrix = _Servers()
    try:
        yield matrix
    finally:
        matrix.close()


@pytest.fixture(scope="session")
def server_url(servers: _Servers, server_name: str, request: pytest.FixtureRequest) -> str:
    if server_name in CLUSTERS:
        return cast(RedisClusterServers, request.getfixturevalue(CLUSTERS[server_name])).url
    return servers.url(server_name)


@pytest.fixture
def redis_url(server_url: str, server_name: str, request: pytest.FixtureRequest) -> str:
    """The URL of a flushed server (each test starts from an empty database)."""
    if server_name in CLUSTERS:
        cast(RedisClusterServers, request.getfixturevalue(CLUSTERS[server_name])).flush()
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


@pytest.fixture(scope="session")
def valkey_cluster() -> Iterator[RedisClusterServers]:
    """A cluster of Valkey 9.1 nodes (the embedded server's binary), 3 primaries with a
    replica each, started on first use."""
    servers = RedisClusterServers(primaries=3, binary=server_binary("valkey9"), replicas=1)
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
    binary = "redis-server" if request.param == "redis-server" else server_binary("valkey9")
    server = RedisServer(binary, config={"appendonly": "yes", "appendfsync": "always"})
    server.start()
    try:
        yield server
    finally:
        server.close()
