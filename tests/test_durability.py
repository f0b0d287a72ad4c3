"""Durability policies: waiting for replicas (WAIT) and for the local fsync, on 7.0 and 6.2."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from eventstore import ConfigurationError, Durability, DurabilityError, EventStore
from eventstore._redis.embedded import embedded_binary
from eventstore.testing import RedisServer
from tests.domain import Deposited, Opened

BINARIES = {"redis7": "redis-server", "redis62": "embedded"}


@pytest.fixture(params=sorted(BINARIES))
def binary(request: pytest.FixtureRequest) -> str | Path:
    name = BINARIES[request.param]
    return embedded_binary() if name == "embedded" else name


@pytest.fixture
def primary(binary: str | Path) -> Iterator[RedisServer]:
    # 7.0 syncs replicas disklessly after a 5 s delay by default: start at once
    server = RedisServer(binary, config={"repl-diskless-sync-delay": "0"})
    server.start()
    try:
        yield server
    finally:
        server.close()


def _wait_replicating(primary: RedisServer, replica: RedisServer) -> None:
    deadline = time.monotonic() + 20
    with closing(primary.client()) as up, closing(replica.client()) as down:
        while True:
            linked = down.info("replication").get("master_link_status") == "up"
            if linked and up.info("replication").get("connected_slaves") == 1:
                return
            assert time.monotonic() < deadline, "the replica did not sync"
            time.sleep(0.05)


def test_waiting_for_a_replica_succeeds_when_one_acknowledges(
    binary: str | Path, primary: RedisServer
) -> None:
    replica = RedisServer(binary, config={"replicaof": f"127.0.0.1 {primary.port}"})
    replica.start()
    try:
        _wait_replicating(primary, replica)
        durability = Durability(replicas=1, timeout_ms=10_000)
        with EventStore.from_url(primary.url, namespace="d", durability=durability) as store:
            result = store.append("Account", "acc-1", [Opened(owner="ann")], 0)
            assert result.first_version == 1
            stream = store.keys.stream("Account", "acc-1")
        with closing(replica.client()) as on_replica:
            assert on_replica.xlen(stream) == 1  # WAIT returned: the replica has it
    finally:
        replica.close()


def test_no_replica_raises_after_the_timeout_and_the_write_is_there(
    primary: RedisServer,
) -> None:
    durability = Durability(replicas=1, timeout_ms=200)
    with EventStore.from_url(primary.url, namespace="d", durability=durability) as store:
        started = time.monotonic()
        ids = [str(uuid.uuid4())]
        with pytest.raises(DurabilityError) as info:
            store.append("Account", "acc-1", [Opened(owner="ann")], 0, event_ids=ids)
        assert time.monotonic() - started >= 0.19  # it did wait
        assert info.value.stream == store.keys.stream("Account", "acc-1")
        assert "replicas=0" in info.value.got
        assert "may still persist" in str(info.value)
        assert store.version_of("Account", "acc-1") == 1
        # the advice in the message holds: re-sending the same batch writes nothing twice
        with pytest.raises(DurabilityError):
            store.append("Account", "acc-1", [Opened(owner="ann")], 0, event_ids=ids)
        assert store.version_of("Account", "acc-1") == 1


@pytest.mark.parametrize(
    "config",
    [{}, {"appendonly": "yes", "appendfsync": "everysec"}, {"appendfsync": "always"}],
)
def test_fsync_is_refused_without_aof_fsync_always(
    binary: str | Path, config: dict[str, str]
) -> None:
    server = RedisServer(binary, config=config)
    server.start()
    try:
        with pytest.raises(ConfigurationError, match="fsync=True needs"):
            EventStore.from_url(server.url, namespace="d", durability=Durability(fsync=True))
    finally:
        server.close()


def test_fsync_is_accepted_with_appendfsync_always(binary: str | Path) -> None:
    server = RedisServer(binary, config={"appendonly": "yes", "appendfsync": "always"})
    server.start()
    try:
        durability = Durability(fsync=True, timeout_ms=1000)
        with EventStore.from_url(server.url, namespace="d", durability=durability) as store:
            result = store.append("Account", "acc-1", [Opened(owner="ann"), Deposited(amount=1)])
            assert (result.first_version, result.positions) == (1, (1, 2))
        server.restart(kill=True)  # SIGKILL: only what was fsynced survives
        with EventStore.from_url(server.url, namespace="d") as reopened:
            assert reopened.version_of("Account", "acc-1") == 2
    finally:
        server.close()


def test_durable_append_reloads_the_script_after_a_flush(primary: RedisServer) -> None:
    """SCRIPT FLUSH (as after a restart): the durable path reloads the script, appends once."""
    durability = Durability(replicas=0, timeout_ms=100)
    with EventStore.from_url(primary.url, namespace="d", durability=durability) as store:
        store.append("Account", "flushed", [Opened(owner="a")], 0)
        store.client.script_flush()
        result = store.append("Account", "flushed", [Deposited(amount=1)], 1)
        assert result.first_version == 2
        assert [e.version for e in store.read("Account", "flushed")] == [1, 2]
