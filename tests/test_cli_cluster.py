"""The CLI on a Redis Cluster: partitions spread over shards, keys found on every node."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest

from eventstore import EventStore
from eventstore.testing import RedisClusterServers
from tests.cli_helpers import run, run_json, write_bank

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
    careless = cluster.nodes[1]
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
    addresses = [f"127.0.0.1:{node.port}" for node in cluster.nodes]
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
