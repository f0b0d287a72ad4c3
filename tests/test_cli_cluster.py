"""The CLI on a Redis Cluster: partitions spread over shards, keys found on every node."""

from __future__ import annotations

import pytest

from eventstore import EventStore
from eventstore.testing import RedisClusterServers
from tests.cli_helpers import run_json, write_bank

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
