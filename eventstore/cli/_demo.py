"""``eventstore demo``: the bank example end to end, told step by step.

It opens two accounts, appends, hits the business rule, loses a race on purpose and
retries it, shows the snapshot written inside an append, replays with and without it,
and reads the global log. Run twice, it continues with the same accounts.
"""

from __future__ import annotations

import shutil
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import attrs
import click
from rich.console import Console
from rich.markup import escape

from eventstore._core.errors import ConcurrencyError
from eventstore._core.records import AppendResult
from eventstore._redis.repository import Repository
from eventstore._redis.store import EventStore
from eventstore.cli._options import json_option, pass_state
from eventstore.cli._output import compact_json
from eventstore.cli._replay import Replayed, replay_aggregate
from eventstore.cli._state import CliState
from eventstore.examples.bank import Account, InsufficientFunds, audit, eventstore_projections

__all__ = ["COMMANDS", "run_demo"]

SNAPSHOT_EVERY = 5
ALICE, BOB = "acc-alice", "acc-bob"
AUDIT_GROUP = "audit"
# failed deliveries come back after this; short so the demo's retries take a moment only
_RETRY_AFTER = timedelta(milliseconds=100)


@attrs.define
class Story:
    """The steps the demo took: what people read, and the data behind each."""

    steps: list[dict[str, Any]] = attrs.field(factory=list)

    def step(self, name: str, lines: list[str], **data: Any) -> None:
        """Record a step: its name, what people read, and its data for ``--json``."""
        self.steps.append({"step": name, "lines": lines, **data})


def _saved(result: AppendResult | None) -> str:
    if result is None:
        return "nothing to save"
    if len(result.positions) == 1:
        return f"version {result.first_version} at log position {result.positions[0]}"
    positions = ", ".join(str(p) for p in result.positions)
    return f"versions {result.first_version}..{result.last_version} at log positions {positions}"


def _open(accounts: Repository[Account], story: Story) -> None:
    lines = []
    for account_id, owner, amount in ((ALICE, "Alice", 100), (BOB, "Bob", 50)):
        account = accounts.get_or_none(account_id)
        if account is not None:
            lines.append(
                f"{owner}'s account {account_id} exists (version {account.version}): "
                "continuing with it"
            )
            continue
        account = Account(id=account_id)
        account.open(owner)
        account.deposit(amount)
        result = accounts.save(account)
        lines.append(
            f"opened {account_id} for {owner} with {amount}: one atomic append, {_saved(result)}"
        )
    story.step("open", lines)


def _appends(accounts: Repository[Account], story: Story) -> None:
    lines = []
    for command, amount in (("deposit", 25), ("withdraw", 40), ("deposit", 10)):
        alice = accounts.get(ALICE)
        getattr(alice, command)(amount)
        result = accounts.save(alice)
        lines.append(f"{command} {amount} on {ALICE}: balance {alice.balance}, {_saved(result)}")
    story.step("append", lines)


def _business_rule(accounts: Repository[Account], story: Story) -> None:
    bob = accounts.get(BOB)
    try:
        bob.withdraw(bob.balance + 500)
    except InsufficientFunds as exc:
        after = accounts.get(BOB).version
        line = f"withdraw {exc.amount} on {BOB} refused: {exc}; nothing written (still v{after})"
        story.step("business-rule", [line], refused=True, version=after)


def _conflict(accounts: Repository[Account], story: Story) -> None:
    teller_a, teller_b = accounts.get(ALICE), accounts.get(ALICE)
    lines = [f"two tellers load {ALICE} at version {teller_a.version}"]
    teller_a.deposit(5)
    lines.append(f"teller A deposits 5: {_saved(accounts.save(teller_a))}")
    teller_b.withdraw(20)
    attempts = 1
    while True:
        try:
            result = accounts.save(teller_b)
            break
        except ConcurrencyError as exc:
            lines.append(
                f"teller B's withdrawal conflicts: expected version "
                f"{exc.expected_version}, the stream is at {exc.actual_version}"
            )
            attempts += 1
            teller_b = accounts.get(ALICE)  # reload and re-run the command on fresh state
            teller_b.withdraw(20)
    lines.append(
        f"teller B reloads and retries: {_saved(result)} "
        f"(balance {teller_b.balance}, {attempts} attempts)"
    )
    story.step("conflict", lines, attempts=attempts)


def _snapshot(store: EventStore, story: Story) -> None:
    snapshot = store.read_snapshot(Account.aggregate_type, ALICE)
    version = snapshot.version if snapshot is not None else None
    line = (
        f"{ALICE} has a snapshot at version {version}, written inside the append that "
        f"crossed a multiple of {SNAPSHOT_EVERY} (snapshot_every={SNAPSHOT_EVERY})"
    )
    story.step("snapshot", [line], snapshot_version=version)


def _balance(replayed: Replayed) -> int:
    return int(replayed.aggregate.state_as_json()["balance"])


def _replay(store: EventStore, story: Story) -> None:
    fast = replay_aggregate(store, Account, ALICE, None, use_snapshot=True)
    full = replay_aggregate(store, Account, ALICE, None, use_snapshot=False)
    past = replay_aggregate(store, Account, ALICE, 3, use_snapshot=True)
    same = fast.aggregate.state_as_json() == full.aggregate.state_as_json()
    lines = [
        (
            f"with the snapshot: v{fast.snapshot_version} + {fast.events_replayed} events "
            f"-> balance {_balance(fast)} ({fast.elapsed_ms:.1f} ms)"
        ),
        (
            f"without it: {full.events_replayed} events -> balance "
            f"{_balance(full)} ({full.elapsed_ms:.1f} ms); same state: {same}"
        ),
        f"as of version 3: balance {_balance(past)}",
    ]
    story.step(
        "replay",
        lines,
        same_state=same,
        events_with_snapshot=fast.events_replayed,
        events_without_snapshot=full.events_replayed,
    )


def _log(store: EventStore, story: Story) -> None:
    partition = store.keys.partition_of(ALICE)
    last = store.last_position(partition)
    page = store.read_log(partition, max(0, last - 4))
    lines = [
        f"position {r.position}: {r.aggregate_type} {r.aggregate_id} v{r.version} "
        f"{r.event_type} {compact_json(r.data)}"
        for r in page.events
    ]
    story.step(
        "log",
        [f"the last events of partition {partition}'s global log:", *lines],
        last_position=last,
    )


def _projection(store: EventStore, story: Story) -> None:
    (balances,) = eventstore_projections(store)
    before = balances.checkpoint().total
    balances.run(until_caught_up=True)
    if balances.active_version() is None:
        balances.promote()
    model = cast(dict[bytes, bytes], store.client.hgetall(balances.active_key("balances")))
    shown = {key.decode(): int(value) for key, value in sorted(model.items())}
    lines = [
        (
            f"projection 'balances' applied positions {before + 1}..{balances.checkpoint().total} "
            "(read model and checkpoint committed together, page by page)"
        ),
        f"read model {balances.active_key('balances')}: {compact_json(shown)}",
    ]
    story.step("projection", lines, balances=shown)


def _consumer_group(store: EventStore, story: Story) -> None:
    group = store.consumer_group(AUDIT_GROUP, start="beginning")
    worker = group.worker(
        "auditor-1", audit, max_deliveries=2, claim_idle=_RETRY_AFTER, block=_RETRY_AFTER
    )
    stats = worker.run(stop_when_idle=True)
    letters = group.dead_letters()
    lines = [
        (
            f"consumer group '{AUDIT_GROUP}': worker auditor-1 handled {stats.processed} events, "
            f"{stats.failed} failed deliveries, {stats.dead_lettered} parked as dead letters"
        ),
        f"lag {group.lag()}, pending {group.pending()}, dead letters {len(letters)}",
        *(f"dead letter {letter.id}: {letter.error}" for letter in letters[-2:]),
    ]
    story.step("consumer-group", lines, processed=stats.processed, dead_letters=len(letters))


def run_demo(store: EventStore) -> Story:
    """Run every step of the demo on ``store`` and return what happened."""
    story = Story()
    accounts = Repository(store, Account, snapshot_every=SNAPSHOT_EVERY)
    _open(accounts, story)
    _appends(accounts, story)
    _business_rule(accounts, story)
    _conflict(accounts, story)
    _snapshot(store, story)
    _replay(store, story)
    _log(store, story)
    _projection(store, story)
    _consumer_group(store, story)
    return story


def _program() -> str:
    """How to call this CLI again: ``eventstore`` if it is on PATH, else its path (.venv)."""
    invoked = Path(sys.argv[0])
    on_path = shutil.which("eventstore")
    if invoked.name != "eventstore" or (on_path and Path(on_path).resolve() == invoked.resolve()):
        return "eventstore"
    try:
        return str(invoked.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(invoked)


def _next_steps(state: CliState) -> list[str]:
    prefix = f"{_program()} --app eventstore.examples.bank"
    if state.url is not None:
        prefix += " --url URL"
    if state.namespace != "es":
        prefix += f" --namespace {state.namespace}"
    return [
        f"{prefix} replay Account {ALICE}",
        f"{prefix} events Account {ALICE}",
        f"{prefix} log",
        f"{prefix} projections status balances",
        f"{prefix} groups lag {AUDIT_GROUP}",
        f"{prefix} dlq list {AUDIT_GROUP}",
        f"{prefix} verify",
        f"{prefix} stats",
    ]


def _render(
    console: Console, story: Story, state: CliState, accounts: list[dict[str, Any]]
) -> None:
    console.print(f"[bold]eventstore demo[/] on {escape(state.where)}")
    for number, step in enumerate(story.steps, start=1):
        console.print(f"\n[bold cyan]{number}. {step['step']}[/]")
        for line in step["lines"]:
            console.print(f"   {escape(line)}")
    console.print("\n[bold]accounts[/]")
    for account in accounts:
        console.print(
            f"   {account['id']}: {account['owner']}, balance {account['balance']}, "
            f"version {account['version']}"
        )
    console.print("\n[bold]try next[/]")
    for command in _next_steps(state):
        console.print(f"   {escape(command)}")


@click.command()
@json_option
@pass_state
def demo(state: CliState) -> None:
    """Run the bank example end to end (embedded server by default, or --url)."""
    store = state.store(create=True)
    story = run_demo(store)
    accounts = Repository(store, Account)
    summary = [
        {"id": a.id, "owner": a.owner, "balance": a.balance, "version": a.version}
        for a in (accounts.get(ALICE), accounts.get(BOB))
    ]
    data = {
        "namespace": state.namespace,
        "steps": story.steps,
        "accounts": summary,
        "next": _next_steps(state),
    }
    state.out.result(data, lambda console: _render(console, story, state, summary))


COMMANDS: list[click.Command] = [demo]
