"""``doctor`` and ``demo``: on the test servers, a badly configured server, and embedded."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from eventstore import EventStore, Repository
from eventstore.cli import cli
from eventstore.examples.bank import Account
from eventstore.testing import RedisServer
from tests.cli_helpers import run, run_json
from tests.servers import ALL_SERVERS, server_binary

FINDING_KEYS = {"level", "check", "detail", "advice", "node"}


NAMES = {
    "redis62": "Redis 6.2.",
    "redis7": "Redis 7.0.",
    "redis8": "Redis 8.",
    "valkey9": "Valkey 9.1.",
}


@pytest.fixture(scope="module", params=ALL_SERVERS)
def careful_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, RedisServer]]:
    config = {"appendonly": "yes", "appendfsync": "everysec"}
    server = RedisServer(server_binary(request.param), config=config)
    server.start()
    yield request.param, server
    server.close()


def test_doctor_on_a_well_configured_server(careful_server: tuple[str, RedisServer]) -> None:
    server_name, careful = careful_server
    redis_url, namespace = careful.url, "es"
    data = run_json(redis_url, namespace, "doctor")
    assert data["ok"] is True
    checks = {f["check"]: f for f in data["findings"]}
    assert set(checks) == {
        "server", "persistence", "maxmemory-policy", "stream-node-max-bytes", "lua",
        "commands", "latency",
    }  # fmt: skip
    assert all(set(f) == FINDING_KEYS for f in data["findings"])
    assert checks["stream-node-max-bytes"] == {
        "level": "ok", "check": "stream-node-max-bytes", "detail": "512 bytes", "advice": "",
        "node": None,
    }  # fmt: skip
    assert checks["lua"]["level"] == checks["commands"]["level"] == "ok"
    assert checks["persistence"]["detail"] == "AOF on, appendfsync everysec"
    assert data["server"]["version"].startswith(("6.2", "7.", "8."))
    # the server is named as it names itself, with its own version (Valkey answers as
    # Redis 7.2.4 too)
    server = data["server"]
    assert server["name"].startswith(NAMES[server_name])
    if server["product"] == "Redis":
        assert server["name"] == f"Redis {server['version']}"
    assert server["nodes"] == [{"node": None, "name": server["name"], "version": server["version"]}]
    human = run(redis_url, namespace, "doctor")
    assert human.exit_code == 0
    (line,) = [line for line in human.stdout.splitlines() if "server: " in line]
    assert f"server: {server['name']}" in line
    assert "standalone" in line
    if server["product"] == "Valkey":
        assert f"(as Redis {server['version']})" in line
    assert "maxmemory-policy: noeviction" in human.stdout


def test_doctor_on_the_test_servers_flags_missing_persistence(
    redis_url: str, namespace: str
) -> None:
    result = run(redis_url, namespace, "doctor", "--json")
    assert result.exit_code == 1  # the test servers run without AOF or RDB on purpose
    (persistence,) = [
        f for f in json.loads(result.stdout)["findings"] if f["check"] == "persistence"
    ]
    assert persistence["level"] == "error"


@pytest.fixture(scope="module")
def careless_server() -> Iterator[RedisServer]:
    config = {"maxmemory-policy": "allkeys-lru", "stream-node-max-bytes": "4096"}
    server = RedisServer(server_binary("valkey9"), config=config)
    server.start()
    yield server
    server.close()


def test_doctor_flags_eviction_persistence_and_node_size(careless_server: RedisServer) -> None:
    result = run(careless_server.url, "es", "doctor", "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    levels = {f["check"]: (f["level"], f["detail"], f["advice"]) for f in data["findings"]}
    assert levels["maxmemory-policy"][0] == "error"
    assert "eviction would delete history" in levels["maxmemory-policy"][1]
    assert "noeviction" in levels["maxmemory-policy"][2]
    assert levels["persistence"][0] == "error"
    assert "appendonly yes" in levels["persistence"][2]
    assert levels["stream-node-max-bytes"][0] == "warning"
    assert "4096" in levels["stream-node-max-bytes"][1]
    assert "512" in levels["stream-node-max-bytes"][2]
    human = run(careless_server.url, "es", "doctor")
    assert human.exit_code == 1
    assert "ERROR    maxmemory-policy: allkeys-lru" in human.stdout


def test_other_commands_refuse_an_evicting_server(careless_server: RedisServer) -> None:
    client = careless_server.client()
    client.hset("es:meta", mapping={"partitions": 1, "format": 1})
    client.close()
    result = run(careless_server.url, "es", "stats")
    assert result.exit_code == 1
    assert "maxmemory-policy='allkeys-lru' is unsafe" in result.stderr
    assert result.stderr.count("\n") == 1


def test_demo_on_a_server_url(redis_url: str, namespace: str) -> None:
    data = run_json(redis_url, namespace, "demo")
    steps = {step["step"]: step for step in data["steps"]}
    assert list(steps) == [
        "open", "append", "business-rule", "conflict", "snapshot", "replay", "log",
        "projection", "consumer-group",
    ]  # fmt: skip
    assert steps["business-rule"]["refused"] is True
    assert steps["conflict"]["attempts"] == 2
    assert steps["snapshot"]["snapshot_version"] == 5
    assert steps["replay"]["same_state"] is True
    assert steps["replay"]["events_with_snapshot"] < steps["replay"]["events_without_snapshot"]
    assert {a["id"]: a["balance"] for a in data["accounts"]} == {"acc-alice": 80, "acc-bob": 50}
    assert steps["projection"]["balances"] == {"acc-alice": 80, "acc-bob": 50}
    # the audit group parks alice's withdrawal of 40, the only one above its limit
    assert (steps["consumer-group"]["processed"], steps["consumer-group"]["dead_letters"]) == (8, 1)
    with EventStore.from_url(redis_url, namespace=namespace) as store:
        assert Repository(store, Account).get("acc-alice").balance == 80
        assert store.last_position(0) == 9
    # the second run continues with the same accounts, and the data stays consistent
    human = run(redis_url, namespace, "demo")
    assert human.exit_code == 0, human.output
    assert "acc-alice exists (version 7): continuing with it" in human.stdout
    assert "teller B reloads and retries" in human.stdout
    assert run_json(redis_url, namespace, "verify")["ok"] is True
    assert (
        run_json(redis_url, namespace, "projections", "status", "balances")["active_version"] == 1
    )
    assert run_json(redis_url, namespace, "groups", "lag", "audit")["dead_letters"] == 2


def _socket_answers(socket: Path) -> bool:
    client = redis.Redis(unix_socket_path=str(socket), socket_timeout=2)
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
    finally:
        client.close()


def test_demo_on_the_embedded_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("EVENTSTORE_URL", "EVENTSTORE_APP", "EVENTSTORE_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    missing = runner.invoke(cli, ["log"])
    assert missing.exit_code == 1
    assert "run 'eventstore demo'" in missing.stderr
    socket = tmp_path / ".eventstore" / "redis.sock"
    try:
        demo = runner.invoke(cli, ["demo"], catch_exceptions=False)
        assert demo.exit_code == 0, demo.output
        assert "embedded server under ./.eventstore" in demo.stdout
        assert not _socket_answers(socket), "the demo left the embedded server running"
        # the data survived the shutdown (AOF): the next command restarts the server
        app = ["--app", "eventstore.examples.bank"]
        replay = runner.invoke(cli, [*app, "--json", "replay", "Account", "acc-alice"])
        assert replay.exit_code == 0, replay.output
        assert json.loads(replay.stdout)["state"]["balance"] == 80
        assert not _socket_answers(socket)
        doctor = runner.invoke(cli, ["--namespace", "any", "doctor", "--json"])
        assert doctor.exit_code == 0, doctor.output  # the embedded server is configured safely
        assert json.loads(doctor.stdout)["server"]["name"].startswith("Valkey 9.1")
        assert not _socket_answers(socket)
    finally:
        with contextlib.suppress(redis.ConnectionError, FileNotFoundError):
            if socket.exists():
                redis.Redis(unix_socket_path=str(socket)).shutdown(nosave=True)
