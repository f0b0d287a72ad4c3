"""``projections``, ``groups``, ``dlq`` and ``tail`` on data written through the API."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from eventstore import EventStore, Repository
from eventstore._redis.groups import command
from eventstore.examples.bank import Account, audit, eventstore_projections
from tests.cli_helpers import BANK, PICKY_APP, one_line_error, run, run_json, write_bank

EVENTSTORE = Path(sys.executable).parent / "eventstore"


def _deposit(store: EventStore, account_id: str, *amounts: int) -> None:
    accounts = Repository(store, Account)
    account = accounts.get(account_id)
    for amount in amounts:
        account.deposit(amount)
    accounts.save(account)


@pytest.fixture
def projected(store: EventStore) -> EventStore:
    write_bank(store)
    (balances,) = eventstore_projections(store)
    balances.run(until_caught_up=True)
    return store


def test_projections_list_and_status(redis_url: str, namespace: str, projected: EventStore) -> None:
    (listed,) = run_json(redis_url, namespace, "projections", "list", app=None)["projections"]
    assert (listed["name"], listed["version"], listed["active"]) == ("balances", 1, False)
    assert (listed["lag"], listed["caught_up"]) == (0, True)
    assert listed["partitions"] == [{"partition": 0, "position": 9, "head": 9, "lag": 0}]
    _deposit(projected, "bob", 1, 2, 3)
    status = run_json(redis_url, namespace, "projections", "status", "balances", app=None)
    assert status["active_version"] is None
    (version,) = status["versions"]
    assert (version["lag"], version["caught_up"]) == (3, False)
    human = run(redis_url, namespace, "projections", "status", "balances")
    assert human.exit_code == 0
    assert "balances" in human.stdout
    missing = one_line_error(run(redis_url, namespace, "projections", "status", "nope"))
    assert "no projection 'nope'" in missing
    assert "projections: balances" in missing


def test_projections_rebuild_blue_green(
    redis_url: str, namespace: str, projected: EventStore
) -> None:
    _deposit(projected, "alice", 7)
    data = run_json(redis_url, namespace, "projections", "rebuild", "balances")
    assert (data["name"], data["version"], data["previous_version"]) == ("balances", 2, 1)
    assert (data["positions"], data["promoted"], data["retired_version"]) == ([10], True, None)
    (balances,) = eventstore_projections(projected)
    assert balances.active_version() == 2
    model = cast(dict[bytes, bytes], projected.client.hgetall(balances.active_key("balances")))
    assert {k.decode(): int(v) for k, v in model.items()} == {"alice": 137, "bob": 5}
    again = run_json(redis_url, namespace, "projections", "rebuild", "balances", "--retire-old")
    assert (again["version"], again["retired_version"]) == (3, 2)
    versions = run_json(redis_url, namespace, "projections", "list")["projections"]
    assert [(p["version"], p["active"]) for p in versions] == [(1, False), (3, True)]
    serving = run(redis_url, namespace, "projections", "rebuild", "balances", "--version", "3")
    assert "version 3 serves reads" in one_line_error(serving)
    unknown = run(redis_url, namespace, "projections", "rebuild", "balances", app=None)
    assert "eventstore_projections(store)" in one_line_error(unknown)


@pytest.fixture
def audited(store: EventStore) -> EventStore:
    write_bank(store)  # alice withdraws 20 and 40: the 40 is above the audit's limit
    group = store.consumer_group("audit")
    worker = group.worker(
        "auditor", audit, max_deliveries=2, claim_idle=timedelta(milliseconds=50),
        block=timedelta(milliseconds=50),
    )  # fmt: skip
    worker.run(stop_when_idle=True)
    return store


def test_groups_list_lag_and_pending(redis_url: str, namespace: str, audited: EventStore) -> None:
    (group,) = run_json(redis_url, namespace, "groups", "list")["groups"]
    assert (group["group"], group["lag"], group["pending"], group["dead_letters"]) == (
        "audit", 0, 0, 1,
    )  # fmt: skip
    _deposit(audited, "bob", 1, 2)
    # a worker that took two events and died before acknowledging them
    log = audited.keys.log(0)
    command(
        audited.client, "XREADGROUP", "GROUP", "audit", "crashed", "COUNT", 1, "STREAMS", log, ">"
    )
    lag = run_json(redis_url, namespace, "groups", "lag", "audit")
    assert (lag["group"], lag["lag"], lag["pending"], lag["dead_letters"]) == ("audit", 1, 1, 1)
    assert lag["partitions"] == [
        {"partition": 0, "last_position": 11, "delivered_position": 10, "lag": 1, "pending": 1,
         "dead_letters": 1},
    ]  # fmt: skip
    pending = run_json(redis_url, namespace, "groups", "pending", "audit")
    (entry,) = pending["entries"]
    assert (entry["position"], entry["consumer"], entry["deliveries"], entry["retry"]) == (
        10, "crashed", 1, False,
    )  # fmt: skip
    human = run(redis_url, namespace, "groups", "lag", "audit")
    assert human.exit_code == 0
    assert "group audit: lag 1, pending 1" in human.stdout


def test_looking_at_a_missing_group_does_not_create_it(
    redis_url: str, namespace: str, audited: EventStore
) -> None:
    line = one_line_error(run(redis_url, namespace, "groups", "lag", "audti"))
    assert "no consumer group 'audti'" in line
    assert "groups: audit" in line
    groups = command(audited.client, "XINFO", "GROUPS", audited.keys.log(0))
    assert len(groups) == 1


def _dead_letters(url: str, namespace: str) -> list[Any]:
    return cast(list[Any], run_json(url, namespace, "dlq", "list", "audit")["dead_letters"])


def test_dlq_list_show_replay_discard(redis_url: str, namespace: str, audited: EventStore) -> None:
    (letter,) = _dead_letters(redis_url, namespace)
    assert (letter["deliveries"], letter["consumer"]) == (2, "auditor")
    assert letter["error"]["type"] == "NeedsReview"
    assert (letter["event"]["event_type"], letter["event"]["data"]) == (
        "MoneyWithdrawn",
        {"amount": 40},
    )
    shown = run_json(redis_url, namespace, "dlq", "show", "audit", letter["id"])
    assert "raise NeedsReview" in shown["error"]["traceback"]
    human = run(redis_url, namespace, "dlq", "show", "audit", letter["id"])
    assert "failed 2 times, last by auditor" in human.stdout
    replayed = run_json(redis_url, namespace, "dlq", "replay", "audit", letter["id"])
    assert replayed == {"group": "audit", "replayed": 1}
    assert _dead_letters(redis_url, namespace) == []
    assert run_json(redis_url, namespace, "groups", "lag", "audit")["lag"] == 1  # back in line
    worker = audited.consumer_group("audit").worker(
        "auditor", audit, max_deliveries=1, claim_idle=timedelta(milliseconds=50),
        block=timedelta(milliseconds=50),
    )  # fmt: skip
    worker.run(stop_when_idle=True)
    (again,) = _dead_letters(redis_url, namespace)
    assert (again["event"]["position"], again["deliveries"]) == (letter["event"]["position"], 1)
    gone = run(redis_url, namespace, "dlq", "discard", "audit", "0:1-1")
    assert "has no dead letter '0:1-1'" in one_line_error(gone)
    assert run(redis_url, namespace, "dlq", "discard", "audit").exit_code == 2
    assert run(redis_url, namespace, "dlq", "show", "audit", "bad-id").exit_code == 2
    discarded = run_json(redis_url, namespace, "dlq", "discard", "audit", "--all")
    assert discarded == {"group": "audit", "discarded": 1}
    assert _dead_letters(redis_url, namespace) == []
    assert run_json(redis_url, namespace, "dlq", "replay", "audit")["replayed"] == 0


def test_tail_from_the_start_with_a_count(
    redis_url: str, namespace: str, store: EventStore
) -> None:
    write_bank(store)
    result = run(redis_url, namespace, "tail", "--from-start", "--count", "3", "--json")
    assert result.exit_code == 0
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["position"], e["checkpoint"]) for e in lines] == [(1, "1"), (2, "2"), (3, "3")]
    typed = run(redis_url, namespace, "tail", "--after", "0", "--type", "AccountOpened",
                "--timeout", "0.5")  # fmt: skip
    assert typed.exit_code == 0
    assert typed.stdout.count("AccountOpened") == 2
    assert "2 events; resume with --after 9" in typed.stderr
    assert run(redis_url, namespace, "tail", "--after", "x,y").exit_code == 2


def test_tail_follows_new_events_live(redis_url: str, namespace: str, store: EventStore) -> None:
    write_bank(store)
    head = str(store.head())
    args = [str(EVENTSTORE), "--url", redis_url, "--namespace", namespace, "--app", BANK,
            "tail", "--after", head, "--count", "2", "--timeout", "30", "--json"]  # fmt: skip
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as tail:
        # correct either way (it starts after `head`); the pause makes the live path likely
        time.sleep(1.5)
        _deposit(store, "bob", 11, 12)
        out, err = tail.communicate(timeout=60)
    assert tail.returncode == 0, err
    events = [json.loads(line) for line in out.decode().splitlines()]
    assert [(e["aggregate_id"], e["data"]["amount"]) for e in events] == [("bob", 11), ("bob", 12)]


def test_a_failing_rebuild_names_the_event_and_is_not_promoted(
    redis_url: str,
    namespace: str,
    store: EventStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_bank(store)
    module = f"picky_app_{namespace}"
    (tmp_path / f"{module}.py").write_text(PICKY_APP)
    monkeypatch.chdir(tmp_path)  # --app imports from the current directory
    monkeypatch.syspath_prepend(str(tmp_path))
    result = run(redis_url, namespace, "projections", "rebuild", "picky", app=module)
    line = one_line_error(result)
    assert "ProjectionError" in line
    assert "MoneyWithdrawn" in line
    assert "cannot handle a withdrawal of 20" in line
    # stopped before the withdrawal at position 4, never promoted
    for version in run_json(redis_url, namespace, "projections", "list")["projections"]:
        assert (version["active"], version["caught_up"]) == (False, False)
        assert version["partitions"][0]["position"] < 4
    assert store.client.hget(store.keys.projections, "picky") is None
