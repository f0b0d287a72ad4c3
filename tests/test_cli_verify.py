"""``verify`` finds each kind of corruption planted with raw Redis commands."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventstore import EventStore, Repository
from eventstore.examples.bank import Account
from tests.cli_helpers import rewrite_entry, run, run_json, write_bank


@pytest.fixture
def bank_store(store: EventStore) -> EventStore:
    write_bank(store)
    return store


def problems(url: str, namespace: str, app: str | None = "eventstore.examples.bank") -> list[Any]:
    result = run(url, namespace, "verify", "--json", app=app)
    data = json.loads(result.stdout)
    assert result.exit_code == (0 if data["ok"] else 1), result.output
    return [(p["kind"], p["key"]) for p in data["problems"]]


def test_a_gap_in_a_stream(redis_url: str, namespace: str, bank_store: EventStore) -> None:
    stream = bank_store.keys.stream("Account", "alice")
    bank_store.client.xdel(stream, "0-3")
    found = problems(redis_url, namespace)
    assert ("gap", stream) in found
    # the log still points at the deleted event
    assert ("dangling-pointer", bank_store.keys.log(0)) in found
    human = run(redis_url, namespace, "--app", "eventstore.examples.bank", "verify")
    assert human.exit_code == 1
    assert "version 3 is missing" in human.stdout


def test_a_dangling_log_pointer(redis_url: str, namespace: str, bank_store: EventStore) -> None:
    keys = bank_store.keys
    bank_store.client.xadd(
        keys.log(0),
        {"k": keys.stream("Account", "bob"), "v": 9, "t": "MoneyDeposited", "a": "Account"},
        id="0-10",
    )
    bank_store.client.incr(keys.position(0))
    assert problems(redis_url, namespace) == [("dangling-pointer", keys.log(0))]


def test_a_gap_in_the_positions(redis_url: str, namespace: str, bank_store: EventStore) -> None:
    log = bank_store.keys.log(0)
    bank_store.client.xdel(log, "0-4")
    found = problems(redis_url, namespace)
    assert found == [("gap", log)]


def test_a_position_counter_behind_the_log(
    redis_url: str, namespace: str, bank_store: EventStore
) -> None:
    bank_store.client.set(bank_store.keys.position(0), 3)
    assert problems(redis_url, namespace) == [("position-counter", bank_store.keys.position(0))]


def test_a_bad_payload(redis_url: str, namespace: str, bank_store: EventStore) -> None:
    stream = bank_store.keys.stream("Account", "bob")
    rewrite_entry(bank_store, stream, 2, d="{not json")
    assert problems(redis_url, namespace) == [("bad-payload", stream)]


def test_a_bad_payload_of_an_unknown_type_without_app(
    redis_url: str, namespace: str, bank_store: EventStore
) -> None:
    stream = bank_store.keys.stream("Account", "bob")
    rewrite_entry(bank_store, stream, 2, t="Unregistered", d="[1, 2]")
    log_fix = bank_store.client.xrange(bank_store.keys.log(0))
    assert log_fix  # the log still says MoneyDeposited: a mismatch as well
    assert problems(redis_url, namespace, app=None) == [
        ("bad-payload", stream),
        ("pointer-mismatch", bank_store.keys.log(0)),
    ]


def test_a_stale_snapshot(redis_url: str, namespace: str, bank_store: EventStore) -> None:
    key = bank_store.keys.snapshot("Account", "alice")
    state = json.loads(cast(bytes, bank_store.client.hget(key, "s")))
    bank_store.client.hset(key, "s", json.dumps({**state, "transactions": 99}))
    assert problems(redis_url, namespace) == [("stale-snapshot", key)]
    # without the class, verify cannot replay: it says so instead of passing silently
    result = run(redis_url, namespace, "verify", "--json", app=None)
    data = json.loads(result.stdout)
    assert data["unchecked_aggregate_types"] == ["Account"]


def test_a_snapshot_beyond_its_stream(
    redis_url: str, namespace: str, bank_store: EventStore
) -> None:
    key = bank_store.keys.snapshot("Account", "alice")
    bank_store.client.hset(key, "v", 40)
    assert problems(redis_url, namespace, app=None) == [("snapshot-beyond-stream", key)]


def test_keys_outside_the_schema_and_misplaced_or_unindexed_streams(
    redis_url: str, namespace: str, bank_store: EventStore
) -> None:
    keys, client = bank_store.keys, bank_store.client
    client.set(f"{{{namespace}:p0}}:junk", 1)
    client.set(f"{namespace}:stray", 1)
    client.set(f"{{{namespace}:p7}}:log", 1)  # partition 7 of a one-partition namespace
    client.set(f"{namespace}x:not-ours", 1)  # another namespace: ignored
    client.srem(keys.index(0, "Account"), "bob")
    found = problems(redis_url, namespace)
    assert sorted(found) == sorted(
        [
            ("outside-schema", f"{{{namespace}:p0}}:junk"),
            ("outside-schema", f"{namespace}:stray"),
            ("outside-schema", f"{{{namespace}:p7}}:log"),
            ("unindexed", keys.stream("Account", "bob")),
        ]
    )


def test_a_stream_in_the_wrong_partition(redis_url: str, namespace: str) -> None:
    with EventStore.from_url(redis_url, namespace=namespace, partitions=4) as store:
        account = Account(id="zed")
        account.open("Zed")
        Repository(store, Account).save(account)
        right = store.keys.partition_of("zed")
        wrong_tag = store.keys.tag((right + 1) % 4)
        misplaced = f"{wrong_tag}:a:Account:zed"
        store.client.copy(store.keys.stream("Account", "zed"), misplaced)
    assert ("misplaced", misplaced) in problems(redis_url, namespace)


@given(
    moves=st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(min_value=1, max_value=50)),
        min_size=1,
        max_size=25,
    ),
    every=st.integers(min_value=1, max_value=6),
)
def test_verify_passes_for_any_history_written_through_the_api(
    server_url: str, moves: list[tuple[str, int]], every: int
) -> None:
    # the session server with a fresh namespace per example (function fixtures are not reset)
    redis_url, ns = server_url, f"v{uuid.uuid4().hex[:10]}"
    with EventStore.from_url(redis_url, namespace=ns, partitions=2) as store:
        accounts = Repository(store, Account, snapshot_every=every)
        for account_id, amount in moves:
            account = accounts.get_or_none(account_id)
            if account is None:
                account = Account(id=account_id)
                account.open(account_id.upper())
            account.deposit(amount)
            accounts.save(account)
        data = run_json(redis_url, ns, "verify")
        assert data["problems"] == []
        assert data["checked"]["events"] == data["checked"]["log_entries"]
        assert data["checked"]["events"] == len(moves) + len({m[0] for m in moves})
        store.client.delete(*store.client.scan_iter(match=f"*{ns}*"))


def test_a_trimmed_log_is_not_damage_but_a_gap_after_it_is(
    redis_url: str, namespace: str, bank_store: EventStore
) -> None:
    group = bank_store.consumer_group("all-read")
    group.worker("w", lambda _recorded: None, block=timedelta(milliseconds=50)).run(
        stop_when_idle=True
    )
    (trimmed,) = bank_store.trim_log()
    assert trimmed.removed == 9
    data = run_json(redis_url, namespace, "verify")
    assert data["trimmed_logs"] == [{"partition": 0, "first_position": 10}]
    accounts = Repository(bank_store, Account)
    bob = accounts.get("bob")
    for amount in (1, 2, 3):
        bob.deposit(amount)
    accounts.save(bob)  # positions 10..12
    data = run_json(redis_url, namespace, "verify")
    assert (data["ok"], data["checked"]["log_entries"]) == (True, 3)
    bank_store.client.xdel(bank_store.keys.log(0), "0-11")
    assert problems(redis_url, namespace) == [("gap", bank_store.keys.log(0))]
    bank_store.client.xdel(bank_store.keys.log(0), "0-12")
    assert problems(redis_url, namespace) == [("gap", bank_store.keys.log(0))]  # 11..12
