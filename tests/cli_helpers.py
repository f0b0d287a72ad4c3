"""Helpers shared by the CLI tests: run the command line, write the bank domain's data."""

from __future__ import annotations

import json
from typing import Any, cast

from click.testing import CliRunner, Result

from eventstore import EventStore, Repository
from eventstore._core.records import Entries
from eventstore.cli import cli
from eventstore.examples.bank import Account

BANK = "eventstore.examples.bank"


def run(url: str, namespace: str, *args: str, app: str | None = BANK) -> Result:
    """Invoke ``eventstore --url URL --namespace NS [--app BANK] ARGS`` in-process."""
    argv = ["--url", url, "--namespace", namespace]
    if app:
        argv += ["--app", app]
    return CliRunner().invoke(cli, [*argv, *args], catch_exceptions=False)


def run_json(
    url: str, namespace: str, *args: str, app: str | None = BANK, expect_exit: int = 0
) -> Any:
    """Run with ``--json``, check the exit status (success by default), and parse stdout."""
    result = run(url, namespace, *args, "--json", app=app)
    assert result.exit_code == expect_exit, result.output
    return json.loads(result.stdout)


def one_line_error(result: Result) -> str:
    """The error line of a failed run (exactly one line on stderr, exit status 1)."""
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    return lines[0]


def write_bank(store: EventStore) -> dict[str, Account]:
    """Two accounts through the API: alice with 7 events (snapshot at 5), bob with 2."""
    accounts = Repository(store, Account, snapshot_every=5)
    alice, bob = Account(id="alice"), Account(id="bob")
    alice.open("Alice")
    alice.deposit(100)
    accounts.save(alice)
    for amount in (10, 20, 30, 40, 50):
        alice.deposit(amount) if amount % 20 else alice.withdraw(amount)
        accounts.save(alice)
    bob.open("Bob")
    bob.deposit(5)
    accounts.save(bob)
    return {"alice": alice, "bob": bob}


def rewrite_entry(store: EventStore, key: str, version: int, **changes: str | bytes) -> None:
    """Plant corruption: rebuild stream ``key`` with entry ``version``'s fields changed.

    A stream never accepts an id at or below its top again, so the stream is rewritten.
    """
    client = store.client
    entries = cast(Entries, client.xrange(key))
    replaced = {name.encode(): value for name, value in changes.items()}
    with client.pipeline(transaction=True) as pipe:
        pipe.delete(key)
        for entry_id, fields in entries:
            changed = {**fields, **replaced} if entry_id == f"0-{version}".encode() else fields
            pipe.xadd(key, cast(Any, changed), id=entry_id)
        pipe.execute()


# A projection whose handler refuses every withdrawal: importable by --app, and runnable
# as a program (url, namespace) that fails on the first withdrawal.
PICKY_APP = """
import sys

from eventstore import EventStore, Projection
from eventstore.examples.bank import Account, MoneyWithdrawn


def eventstore_projections(store):
    picky = Projection(store, "picky")

    @picky.on(MoneyWithdrawn)
    def _withdrawn(event, ctx):
        raise RuntimeError(f"cannot handle a withdrawal of {event.amount}")

    return [picky]


if __name__ == "__main__":
    with EventStore.from_url(sys.argv[1], namespace=sys.argv[2]) as store:
        (picky,) = eventstore_projections(store)
        picky.run(until_caught_up=True)
"""
