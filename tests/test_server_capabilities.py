"""What a server is and whether the store can run on it, asked of the server itself."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from eventstore import ConfigurationError
from eventstore._core.server import (
    PROBED_COMMANDS,
    ServerInfo,
    check_capabilities,
    parse_server_info,
)
from eventstore._redis.server import server_info
from eventstore.testing import RedisServer
from tests.fronts import Front, open_store


def _info(server: dict[str, Any], commands: Any = None) -> ServerInfo:
    return parse_server_info([server, {}, {}], [{}, {}, {}, {}], commands)


def test_a_valkey_server_is_named_by_its_own_version() -> None:
    info = _info({"redis_version": "7.2.4", "valkey_version": "9.1.2", "redis_mode": "cluster"})
    assert (info.product, info.product_version, info.version) == ("Valkey", (9, 1, 2), (7, 2, 4))
    assert info.name == "Valkey 9.1.2"
    redis = _info({"redis_version": "7.0.15"})
    assert (redis.product, redis.name) == ("Redis", "Redis 7.0.15")


def test_features_come_from_the_commands_the_server_has_not_its_version() -> None:
    everything = [[name] for name in PROBED_COMMANDS]
    without_waitaof = [None if name == "waitaof" else [name] for name in PROBED_COMMANDS]
    assert _info({"redis_version": "6.2.0"}, everything).has_waitaof
    assert not _info({"redis_version": "8.0.0"}, without_waitaof).has_waitaof
    # not asked (or refused): judged by the version it answers as
    assert _info({"redis_version": "7.2.4"}).has_waitaof
    assert not _info({"redis_version": "7.0.15"}, ValueError("refused")).has_waitaof


@pytest.mark.parametrize("version", ["6.0.16", "5.0.7", "2.8.24"])
def test_a_server_older_than_6_2_is_refused_naming_it(version: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        check_capabilities(_info({"redis_version": version}), "10.0.0.7:6379")
    assert f"Redis {version} at 10.0.0.7:6379 is too old" in str(info.value)
    assert "6.2" in str(info.value)


def test_a_server_without_scripting_or_streams_is_refused_naming_what_it_lacks() -> None:
    reply = [None if name in {"evalsha", "xautoclaim"} else [name] for name in PROBED_COMMANDS]
    with pytest.raises(ConfigurationError) as info:
        check_capabilities(_info({"redis_version": "7.2.4"}, reply), "proxy:6379")
    assert "Redis 7.2.4 at proxy:6379 lacks xautoclaim, evalsha" in str(info.value)


@pytest.fixture(scope="module")
def crippled() -> Iterator[RedisServer]:
    """A real server with scripting taken away, as some proxies and managed plans do."""
    server = RedisServer(config={"rename-command": 'EVALSHA ""'})
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.both_fronts
def test_opening_a_store_on_a_server_without_evalsha_fails_at_open(
    crippled: RedisServer, front: Front
) -> None:

    client = redis.Redis.from_url(crippled.url)
    try:
        info = server_info(client)
    finally:
        client.close()
    assert info.missing_commands == ("evalsha",)
    with pytest.raises(ConfigurationError) as raised:
        open_store(front, crippled.url, namespace="es")
    message = str(raised.value)
    assert f"{info.name} at 127.0.0.1:{crippled.port} lacks evalsha" in message
    assert "scripting" in message


@pytest.mark.all_servers
def test_every_test_server_answers_with_every_required_command(
    server_url: str, server_name: str
) -> None:
    client = redis.Redis.from_url(server_url)
    try:
        info = server_info(client)
    finally:
        client.close()
    assert info.commands is not None
    assert info.missing_commands == ()
    assert info.has_sharded_pubsub == (info.version >= (7, 0))
    assert info.has_waitaof == (info.version >= (7, 2))
    expected = {
        "redis62": "Redis 6.2",
        "redis7": "Redis 7.",
        "redis8": "Redis 8.",
        "valkey9": "Valkey 9.",
    }
    if server_name in expected:
        assert info.name.startswith(expected[server_name])
