"""The CLI's reading commands against a real server, with data written through the API."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import cast

import pytest

from eventstore import EventStore, Repository, Snapshot
from eventstore.cli._replay import PAGE, replay_aggregate
from eventstore.examples.bank import Account
from tests.cli_helpers import one_line_error, run, run_json, write_bank

pytestmark = pytest.mark.all_servers

EVENT_KEYS = {
    "aggregate_type", "aggregate_id", "version", "partition", "position", "event_type",
    "schema_version", "event_id", "recorded_at", "data", "metadata", "correlation_id",
    "causation_id",
}  # fmt: skip


@pytest.fixture
def bank(store: EventStore) -> dict[str, Account]:
    return write_bank(store)


def test_replay_uses_the_snapshot_and_says_how(
    redis_url: str, namespace: str, bank: dict[str, Account]
) -> None:
    data = run_json(redis_url, namespace, "replay", "Account", "alice")
    assert set(data) >= {
        "aggregate_type",
        "id",
        "version",
        "state",
        "snapshot_version",
        "events_replayed",
    }
    alice = bank["alice"]
    assert data["state"] == alice.state_as_json()
    assert (data["version"], data["current_version"]) == (alice.version, alice.version)
    assert (data["snapshot_version"], data["events_replayed"]) == (5, alice.version - 5)
    human = run(redis_url, namespace, "replay", "Account", "alice")
    assert human.exit_code == 0
    assert f"built from snapshot v5 + {alice.version - 5} events" in human.stdout
    assert f"balance      │ {alice.balance}" in human.stdout


def test_replay_without_snapshot_and_as_of_a_version(
    redis_url: str, namespace: str, bank: dict[str, Account]
) -> None:
    full = run_json(redis_url, namespace, "replay", "Account", "alice", "--no-snapshot")
    assert (full["snapshot_version"], full["events_replayed"]) == (None, bank["alice"].version)
    assert full["state"] == bank["alice"].state_as_json()
    past = run_json(redis_url, namespace, "replay", "Account", "alice", "--version", "2")
    assert (past["version"], past["state"]["balance"], past["events_replayed"]) == (2, 100, 2)
    assert past["snapshot_skipped"] is not None  # the v5 snapshot is newer than v2


def test_events_lists_the_history(redis_url: str, namespace: str, bank: dict[str, Account]) -> None:
    data = run_json(redis_url, namespace, "events", "Account", "alice")
    assert (data["aggregate_type"], data["id"]) == ("Account", "alice")
    assert [e["version"] for e in data["events"]] == list(range(1, bank["alice"].version + 1))
    assert all(set(e) == EVENT_KEYS for e in data["events"])
    assert data["events"][0]["event_type"] == "AccountOpened"
    assert data["events"][1]["data"] == {"amount": 100}
    back = run_json(redis_url, namespace, "events", "Account", "alice", "--reverse", "--limit", "2")
    assert [e["version"] for e in back["events"]] == [7, 6]
    middle = run_json(
        redis_url, namespace, "events", "Account", "alice", "--from", "2", "--to", "3"
    )
    assert [e["version"] for e in middle["events"]] == [2, 3]
    human = run(redis_url, namespace, "events", "Account", "bob")
    assert human.exit_code == 0
    assert "AccountOpened" in human.stdout
    assert '{"owner":"Bob"}' in human.stdout


def test_events_needs_no_app_for_reading(
    redis_url: str, namespace: str, bank: dict[str, Account]
) -> None:
    # the bank module is imported in this process already; the command itself needs no --app
    data = run_json(redis_url, namespace, "events", "Account", "bob", app=None)
    assert [e["event_type"] for e in data["events"]] == ["AccountOpened", "MoneyDeposited"]


def test_log_in_position_order_with_filters(
    redis_url: str, namespace: str, bank: dict[str, Account]
) -> None:
    data = run_json(redis_url, namespace, "log")
    positions = [e["position"] for e in data["events"]]
    assert positions == list(range(1, 10))
    assert data["last_positions"] == {"0": 9}
    deposits = run_json(redis_url, namespace, "log", "--type", "MoneyDeposited", "--limit", "2")
    assert [e["event_type"] for e in deposits["events"]] == ["MoneyDeposited"] * 2
    assert deposits["last_positions"] == {"0": deposits["events"][-1]["position"]}
    after = run_json(redis_url, namespace, "log", "--after", "7")
    assert [(e["aggregate_id"], e["position"]) for e in after["events"]] == [
        ("bob", 8),
        ("bob", 9),
    ]
    human = run(redis_url, namespace, "log", "--limit", "3")
    assert human.exit_code == 0
    assert "Account:alice" in human.stdout
    assert "resume with --after 3" in human.stdout


def test_log_on_several_partitions(redis_url: str, namespace: str) -> None:
    with EventStore.from_url(redis_url, namespace=namespace, partitions=3) as store:
        accounts = Repository(store, Account)
        for name in ("a", "b", "c", "d", "e"):
            account = Account(id=name)
            account.open(name)
            accounts.save(account)
        partitions = {store.keys.partition_of(name) for name in "abcde"}
    data = run_json(redis_url, namespace, "log")
    assert sorted(e["aggregate_id"] for e in data["events"]) == list("abcde")
    assert set(data["last_positions"]) == {"0", "1", "2"}
    for partition in range(3):
        mine = [e["position"] for e in data["events"] if e["partition"] == partition]
        assert mine == list(range(1, len(mine) + 1))
        assert data["last_positions"][str(partition)] == len(mine)
    assert {e["partition"] for e in data["events"]} == partitions
    one = run_json(redis_url, namespace, "log", "--partition", "1")
    assert {e["partition"] for e in one["events"]} <= {1}
    bad = run(redis_url, namespace, "log", "--partition", "3")
    assert bad.exit_code == 2


def test_snapshots_take_drop_verify(
    redis_url: str, namespace: str, bank: dict[str, Account], store: EventStore
) -> None:
    taken = run_json(redis_url, namespace, "snapshots", "take", "Account", "bob")
    assert (taken["version"], taken["written"]) == (2, True)
    assert taken["fingerprint"] == Account.schema_fingerprint()
    snapshot = store.read_snapshot("Account", "bob")
    assert snapshot is not None
    assert snapshot.state == bank["bob"].state_as_json()
    checked = run_json(redis_url, namespace, "snapshots", "verify", "Account")
    assert (checked["ok"], checked["checked"], checked["consistent"]) == (True, 2, 2)
    dropped = run_json(redis_url, namespace, "snapshots", "drop", "Account", "bob")
    assert dropped["dropped"] == 1
    assert store.read_snapshot("Account", "bob") is None
    human = run(redis_url, namespace, "snapshots", "drop", "Account")
    assert human.exit_code == 0
    assert "dropped 1 snapshot(s) of Account (all)" in human.stdout
    assert store.read_snapshot("Account", "alice") is None
    again = run_json(redis_url, namespace, "snapshots", "verify", "Account")
    assert (again["checked"], again["without_snapshot"]) == (0, 2)


def test_snapshots_verify_finds_a_stale_snapshot(
    redis_url: str, namespace: str, bank: dict[str, Account], store: EventStore
) -> None:
    key = store.keys.snapshot("Account", "alice")
    state = json.loads(cast(bytes, store.client.hget(key, "s")))
    store.client.hset(key, "s", json.dumps({**state, "balance": 1}))
    result = run(redis_url, namespace, "snapshots", "verify", "Account", "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["ok"] is False
    assert [(p["kind"], p["key"]) for p in data["problems"]] == [("stale-snapshot", key)]
    assert "'balance'" in data["problems"][0]["detail"]


def test_stats_counts_types_events_and_logs(
    redis_url: str, namespace: str, bank: dict[str, Account]
) -> None:
    data = run_json(redis_url, namespace, "stats")
    assert (data["namespace"], data["partitions"]) == (namespace, 1)
    assert (data["totals"]["aggregates"], data["totals"]["events"]) == (2, 9)
    (account,) = data["aggregate_types"]
    assert (account["aggregate_type"], account["aggregates"], account["events"]) == (
        "Account", 2, 9,
    )  # fmt: skip
    assert account["snapshots"] == 1
    assert account["bytes"] > 0
    assert account["bytes_per_event"] == pytest.approx(account["bytes"] / 9, abs=0.1)
    assert account["live_subscribers"] == 0
    assert data["live"]["channels"] == {}
    assert data["logs"] == [
        {
            "partition": 0,
            "entries": 9,
            "last_position": 9,
            "bytes": data["logs"][0]["bytes"],
            "bytes_per_entry": data["logs"][0]["bytes_per_entry"],
        }
    ]
    assert [(s["id"], s["events"]) for s in data["largest_streams"]] == [("alice", 7), ("bob", 2)]
    human = run(redis_url, namespace, "stats")
    assert human.exit_code == 0
    assert "2 aggregates, 9 events" in human.stdout


def test_verify_passes_on_data_written_through_the_api(
    redis_url: str, namespace: str, bank: dict[str, Account]
) -> None:
    data = run_json(redis_url, namespace, "verify")
    assert data["ok"] is True
    assert data["problems"] == []
    assert data["checked"] == {
        "keys": 8, "streams": 2, "events": 9, "log_entries": 9, "snapshots": 1,
    }  # fmt: skip
    human = run(redis_url, namespace, "verify")
    assert human.exit_code == 0
    assert "no problems" in human.stdout


def _long_history(store: EventStore, deposits: int) -> Account:
    accounts = Repository(store, Account)
    account = Account(id="big")
    account.open("Big")
    for start in range(0, deposits, 250):
        for amount in range(start, min(start + 250, deposits)):
            account.deposit(amount + 1)
        accounts.save(account)
    return account


def test_replay_of_a_long_history_reads_pages(
    redis_url: str, namespace: str, store: EventStore
) -> None:
    big = _long_history(store, 2600)  # versions 1..2601
    totals: list[int] = []
    advanced: list[int] = []

    @contextlib.contextmanager
    def progress(total: int) -> Iterator[Callable[[int], None]]:
        totals.append(total)
        yield advanced.append

    replayed = replay_aggregate(store, Account, "big", None, use_snapshot=True, progress=progress)
    assert replayed.aggregate.state_as_json() == big.state_as_json()
    assert (replayed.events_replayed, replayed.snapshot_version) == (2601, None)
    assert (totals, advanced) == ([2601], [PAGE, PAGE, 601])
    # a snapshot shortens it; the CLI agrees with the direct call
    store.write_snapshot("Account", "big", Snapshot(1500, Account.schema_fingerprint(),
                                                     _state_at(store, 1500)))  # fmt: skip
    data = run_json(redis_url, namespace, "replay", "Account", "big")
    assert (data["snapshot_version"], data["events_replayed"]) == (1500, 1101)
    assert data["state"] == big.state_as_json()
    past = run_json(redis_url, namespace, "replay", "Account", "big", "--version", "2300")
    assert (past["snapshot_version"], past["events_replayed"]) == (1500, 800)
    full = run_json(redis_url, namespace, "replay", "Account", "big", "--no-snapshot")
    assert (full["snapshot_version"], full["events_replayed"]) == (None, 2601)


def _state_at(store: EventStore, version: int) -> dict[str, object]:
    return Repository(store, Account).get("big", version).state_as_json()


def test_replay_of_a_long_history_reports_a_gap(
    redis_url: str, namespace: str, store: EventStore
) -> None:
    _long_history(store, 1500)
    store.client.xdel(store.keys.stream("Account", "big"), "0-1200")
    result = run(redis_url, namespace, "replay", "Account", "big")
    line = one_line_error(result)
    assert "version 1201 field 'id': expected version 1200 (a gap)" in line


def test_stats_counts_live_subscribers(
    redis_url: str, namespace: str, bank: dict[str, Account], store: EventStore
) -> None:
    # the feeds of one store share a connection: two subscribers are two stores
    with (
        EventStore.from_url(redis_url, namespace=namespace) as other,
        store.live("Account"),
        other.live("Account"),
    ):
        data = run_json(redis_url, namespace, "stats")
    (account,) = data["aggregate_types"]
    assert account["live_subscribers"] == 2
    assert data["live"]["channels"] == {store.keys.live_channel("Account"): 2}
