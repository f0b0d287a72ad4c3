"""The CLI on a Redis Cluster: partitions spread over shards, keys found on every node."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, cast

import pytest
from click.testing import CliRunner

from eventstore import EventStore
from eventstore.cli import cli
from eventstore.examples.bank import audit, eventstore_projections
from eventstore.testing import RedisClusterServers
from tests.cli_helpers import BANK, run, run_json, write_bank

pytestmark = pytest.mark.slow


def test_reading_commands_and_verify_on_a_cluster(
    cluster: RedisClusterServers, namespace: str
) -> None:
    cluster.flush()
    with EventStore.from_url(cluster.url, namespace=namespace, partitions=6) as store:
        bank = write_bank(store)
    replayed = run_json(cluster.url, namespace, "replay", "Account", "alice")
    assert replayed["state"] == bank["alice"].state_as_json()
    events = run_json(cluster.url, namespace, "events", "Account", "bob")["events"]
    assert [e["version"] for e in events] == [1, 2]
    logged = run_json(cluster.url, namespace, "log")
    assert sorted(e["aggregate_id"] for e in logged["events"]) == ["alice"] * 7 + ["bob"] * 2
    verified = run_json(cluster.url, namespace, "verify")
    assert (verified["ok"], verified["checked"]["events"]) == (True, 9)
    stats = run_json(cluster.url, namespace, "stats")
    assert stats["totals"]["events"] == 9
    doctor = run_json(cluster.url, namespace, "doctor", expect_exit=1)
    assert doctor["server"]["mode"] == "cluster"


def test_doctor_judges_every_primary_of_a_cluster(
    cluster: RedisClusterServers, namespace: str
) -> None:
    careless = cluster.primaries()[1]
    client = careless.client()
    (policy,) = cast(dict[Any, bytes | str], client.config_get("maxmemory-policy")).values()
    try:
        client.config_set("maxmemory-policy", "allkeys-lru")  # one shard could evict history
        result = run(cluster.url, namespace, "doctor", "--json")
        human = run(cluster.url, namespace, "doctor")
    finally:
        client.config_set("maxmemory-policy", policy)
        client.close()
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    addresses = [f"127.0.0.1:{node.port}" for node in cluster.primaries()]  # not replicas
    assert sorted(n["node"] for n in data["server"]["nodes"]) == sorted(addresses)
    assert data["server"]["mode"] == "cluster"
    by_check: dict[str, dict[str, str]] = {}
    for finding in data["findings"]:
        by_check.setdefault(finding["check"], {})[finding["node"]] = finding["level"]
    for check in ("server", "persistence", "maxmemory-policy", "stream-node-max-bytes"):
        assert sorted(by_check[check]) == sorted(addresses), check
    evicting = f"127.0.0.1:{careless.port}"
    assert {node for node, level in by_check["maxmemory-policy"].items() if level == "error"} == {
        evicting
    }
    assert set(by_check["lua"]) == {None}
    assert f"maxmemory-policy on {evicting}: allkeys-lru" in human.stdout


def test_groups_and_dead_letters_with_the_cluster_flag(
    cluster: RedisClusterServers, namespace: str
) -> None:
    """``--url redis://<any node> --cluster``: group lag and pending per partition, dead
    letters listed, shown, replayed and discarded on the partitions' own nodes."""
    cluster.flush()
    with EventStore.from_url(cluster.url, namespace=namespace, partitions=6) as store:
        write_bank(store)  # alice withdraws 20 and 40: the 40 is above the audit's limit
        group = store.consumer_group("audit")
        worker = group.worker(
            "auditor", audit, max_deliveries=2, claim_idle=timedelta(milliseconds=50)
        )
        worker.run(stop_when_idle=True)
        alice = store.keys.partition_of("alice")
    seed = cluster.primaries()[-1].url.removesuffix("/0")

    def cli_json(*args: str) -> Any:
        result = CliRunner().invoke(
            cli,
            ["--url", seed, "--cluster", "--namespace", namespace, "--app", BANK, *args, "--json"],
        )
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    (listed,) = cli_json("groups", "list")["groups"]
    assert (listed["group"], listed["lag"], listed["pending"], listed["dead_letters"]) == (
        "audit", 0, 0, 1,
    )  # fmt: skip
    lag = cli_json("groups", "lag", "audit")
    assert len(lag["partitions"]) == 6
    assert [p["dead_letters"] for p in lag["partitions"]] == [int(p == alice) for p in range(6)]
    (letter,) = cli_json("dlq", "list", "audit")["dead_letters"]
    assert letter["id"].startswith(f"{alice}:")
    shown = cli_json("dlq", "show", "audit", letter["id"])
    assert shown["error"]["type"] == letter["error"]["type"]
    assert cli_json("dlq", "replay", "audit", letter["id"])["replayed"] == 1
    assert cli_json("groups", "lag", "audit")["lag"] == 1  # back in line on its partition
    assert cli_json("groups", "pending", "audit")["entries"] == []
    assert cli_json("dlq", "discard", "audit", "--all")["discarded"] == 0
    usage = CliRunner().invoke(cli, ["--url", "unix:///tmp/x.sock", "--cluster", "groups", "list"])
    assert usage.exit_code == 2
    assert "--cluster" in usage.output


def test_acl_apply_gives_every_primary_the_rule(
    cluster: RedisClusterServers, namespace: str
) -> None:
    user = f"app-{namespace}"
    data = run_json(cluster.url, namespace, "acl", "--apply", user, app=None)
    assert len(data["applied"]["nodes"]) == cluster.primary_count
    try:
        for node in cluster.nodes:
            if f"127.0.0.1:{node.port}" not in data["applied"]["nodes"]:
                continue
            client = node.client()
            try:  # Redis 7 checks a command against a user's rights without running it
                key = f"{{{namespace}:p0}}:a:Account:x"
                ok = client.execute_command("ACL", "DRYRUN", user, "XADD", key, "*", "a", "b")  # type: ignore[no-untyped-call]
                other = client.execute_command(
                    "ACL", "DRYRUN", user, "XADD", "elsewhere", "*", "a", "b"
                )  # type: ignore[no-untyped-call]
            finally:
                client.close()
            assert ok in (b"OK", "OK")
            assert b"no permissions" in other or "no permissions" in str(other)
    finally:
        for node in cluster.nodes:
            client = node.client()
            client.acl_deluser(user)
            client.close()


def test_projections_commands_on_a_cluster(cluster: RedisClusterServers, namespace: str) -> None:
    """``projections list | status | rebuild`` (blue/green, retire) on a cluster, where each
    version's checkpoints live in its own slot."""
    cluster.flush()
    with EventStore.from_url(cluster.url, namespace=namespace, partitions=6) as store:
        write_bank(store)
        (balances,) = eventstore_projections(store)
        balances.run(until_caught_up=True)
        heads = list(store.head().positions)
    (listed,) = run_json(cluster.url, namespace, "projections", "list", app=None)["projections"]
    assert (listed["name"], listed["version"], listed["caught_up"]) == ("balances", 1, True)
    assert [p["position"] for p in listed["partitions"]] == heads
    rebuilt = run_json(cluster.url, namespace, "projections", "rebuild", "balances")
    assert (rebuilt["version"], rebuilt["promoted"]) == (2, True)
    again = run_json(cluster.url, namespace, "projections", "rebuild", "balances", "--retire-old")
    assert (again["version"], again["retired_version"]) == (3, 2)
    status = run_json(cluster.url, namespace, "projections", "status", "balances", app=None)
    assert status["active_version"] == 3
    assert [(v["version"], v["caught_up"]) for v in status["versions"]] == [(1, True), (3, True)]
    with EventStore.from_url(cluster.url, namespace=namespace) as store:
        (balances,) = eventstore_projections(store)
        model = cast(dict[bytes, bytes], store.client.hgetall(balances.active_key("balances")))
        assert {k.decode(): int(v) for k, v in model.items()} == {"alice": 130, "bob": 5}
        assert store.client.exists(store.keys.projection_checkpoints("balances", 2)) == 0
