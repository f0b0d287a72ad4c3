"""Every failure is one clear line on stderr with exit status 1; usage errors exit 2."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from eventstore import EventStore
from eventstore.cli import cli
from eventstore.testing import free_port
from tests.cli_helpers import one_line_error, rewrite_entry, run, write_bank


@pytest.fixture
def bank_store(store: EventStore) -> EventStore:
    write_bank(store)
    return store


def test_unknown_aggregate_type(redis_url: str, namespace: str, bank_store: EventStore) -> None:
    line = one_line_error(run(redis_url, namespace, "replay", "Acount", "alice"))
    assert "unknown aggregate type 'Acount'" in line
    assert "defines Account" in line
    without_app = one_line_error(run(redis_url, namespace, "replay", "Account", "alice", app=None))
    assert "no --app given" in without_app
    assert "pass --app" in without_app


def test_missing_aggregate(redis_url: str, namespace: str, bank_store: EventStore) -> None:
    line = one_line_error(run(redis_url, namespace, "replay", "Account", "carol"))
    assert "Account 'carol' not found" in line
    assert f"namespace {namespace!r}" in line
    assert "Account 'carol' not found" in one_line_error(
        run(redis_url, namespace, "events", "Account", "carol")
    )
    past = one_line_error(run(redis_url, namespace, "replay", "Account", "bob", "--version", "9"))
    assert "not found at version 9" in past


def test_missing_namespace_names_the_ones_there(
    redis_url: str, namespace: str, bank_store: EventStore
) -> None:
    line = one_line_error(run(redis_url, "nosuchns", "log"))
    assert "namespace 'nosuchns' does not exist" in line
    assert namespace in line
    assert "pass --namespace" in line


def test_bad_url_and_server_down(namespace: str) -> None:
    bad = one_line_error(run("http://example.com", namespace, "log"))
    assert "--url 'http://example.com' is not a Redis URL" in bad
    port = free_port()
    down = one_line_error(run(f"redis://user:secret@127.0.0.1:{port}/0", namespace, "stats"))
    assert f"cannot reach Redis at redis://user:***@127.0.0.1:{port}/0" in down
    assert "secret" not in down
    assert "check that the server runs" in down


def test_corrupted_entry_names_the_stream_and_field(
    redis_url: str, namespace: str, bank_store: EventStore
) -> None:
    key = bank_store.keys.stream("Account", "bob")
    rewrite_entry(bank_store, key, 2, d='{"amount": "lots"}')
    line = one_line_error(run(redis_url, namespace, "events", "Account", "bob"))
    assert key in line
    assert "version 2 field 'd.amount'" in line
    assert "eventstore verify" in line
    assert key in one_line_error(run(redis_url, namespace, "replay", "Account", "bob"))


def test_unknown_event_type_says_to_pass_app(
    redis_url: str, namespace: str, bank_store: EventStore
) -> None:
    key = bank_store.keys.stream("Account", "bob")
    bank_store.client.xadd(
        key, {"t": "NeverDefined", "s": 1, "i": "x", "ts": 1, "p": 10, "d": "{}"}, id="0-3"
    )
    line = one_line_error(run(redis_url, namespace, "events", "Account", "bob"))
    assert "unknown event type 'NeverDefined'" in line
    assert "pass --app" in line


def test_bad_app_module(redis_url: str, namespace: str, bank_store: EventStore) -> None:
    line = one_line_error(run(redis_url, namespace, "stats", app="no_such_module_xyz"))
    assert "--app no_such_module_xyz: cannot import" in line
    attr = one_line_error(run(redis_url, namespace, "stats", app="eventstore.examples.bank:Nope"))
    assert "has no attribute 'Nope'" in attr


def test_app_attribute_selects_what_is_known(
    redis_url: str, namespace: str, bank_store: EventStore
) -> None:
    result = run(
        redis_url, namespace, "replay", "Account", "bob", app="eventstore.examples.bank:Account"
    )
    assert result.exit_code == 0, result.output


def test_json_mode_errors_are_json_too(
    redis_url: str, namespace: str, bank_store: EventStore
) -> None:
    result = run(redis_url, namespace, "--json", "replay", "Account", "carol")
    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "AggregateNotFound"
    assert "carol" in error["message"]
    assert result.stderr.count("\n") == 1


def test_usage_errors_exit_2(redis_url: str, namespace: str) -> None:
    assert run(redis_url, namespace, "replay", "Account").exit_code == 2
    assert run(redis_url, namespace, "nosuchcommand").exit_code == 2
    assert run(redis_url, namespace, "events", "A", "b", "--limit", "0").exit_code == 2


def test_debug_shows_the_traceback(redis_url: str, namespace: str, bank_store: EventStore) -> None:
    runner = CliRunner()
    args = ["--url", redis_url, "--namespace", namespace, "--debug", "events", "Account", "zed"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 1
    assert type(result.exception).__name__ == "AggregateNotFound"
