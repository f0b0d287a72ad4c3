"""``groups list | lag | pending`` and ``dlq list | show | replay | discard``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click
import redis
from rich.console import Console
from rich.markup import escape

from eventstore._core.codec import version_of_id
from eventstore._core.groups import DeadLetter, PendingEntry
from eventstore._redis.groups import ConsumerGroup, command
from eventstore._redis.store import EventStore
from eventstore.cli._errors import CliError
from eventstore.cli._fetch import text
from eventstore.cli._options import json_option, pass_state
from eventstore.cli._output import compact_json, make_table
from eventstore.cli._shapes import event_json
from eventstore.cli._state import CliState

__all__ = ["COMMANDS", "dead_letter_json", "group_names"]


def group_names(store: EventStore) -> list[str]:
    """The consumer groups of the namespace (every group reads every partition log)."""
    try:
        reply = command(store.client, "XINFO", "GROUPS", store.keys.log(0))
    except redis.ResponseError:  # no log yet: no groups
        return []
    names = []
    for raw in reply:
        info = raw if isinstance(raw, dict) else dict(zip(raw[::2], raw[1::2], strict=True))
        fields = {text(key): value for key, value in info.items()}
        names.append(text(fields["name"]))
    return sorted(names)


def existing_group(store: EventStore, name: str) -> ConsumerGroup:
    """The group ``name``, never created by looking at it (``CliError`` if it is absent)."""
    names = group_names(store)
    if name not in names:
        raise CliError(
            f"no consumer group {name!r} in namespace {store.namespace!r} "
            f"(groups: {', '.join(names) or 'none'})",
            "check the name with 'eventstore groups list'",
        )
    return store.consumer_group(name)


def _status_json(group: ConsumerGroup) -> dict[str, Any]:
    partitions = [
        {
            "partition": s.partition,
            "last_position": s.last_position,
            "delivered_position": s.delivered_position,
            "lag": s.lag,
            "pending": s.pending,
            "dead_letters": s.dead_letters,
        }
        for s in group.status()
    ]
    totals = {name: sum(p[name] for p in partitions) for name in ("lag", "pending", "dead_letters")}
    return {"group": group.name, **totals, "partitions": partitions}


@click.group()
def groups() -> None:
    """Consumer groups: lag and pending entries."""


@groups.command("list")
@json_option
@pass_state
def list_groups(state: CliState) -> None:
    """Every consumer group with its lag, pending entries and dead letters."""
    store = state.store()
    found = [_status_json(existing_group(store, name)) for name in group_names(store)]
    rows = [(g["group"], g["lag"], g["pending"], g["dead_letters"]) for g in found]
    table = make_table(f"{len(found)} groups", ("group", "lag", "pending", "dead letters"), rows)
    state.out.result({"groups": found}, lambda console: console.print(table))


@groups.command()
@click.argument("name")
@json_option
@pass_state
def lag(state: CliState, name: str) -> None:
    """How far group NAME is behind, per partition (exact, from positions)."""
    data = _status_json(existing_group(state.store(), name))
    columns = ("partition", "last position", "delivered", "lag", "pending", "dead letters")
    rows = [
        (p["partition"], p["last_position"], p["delivered_position"], p["lag"], p["pending"],
         p["dead_letters"])
        for p in data["partitions"]
    ]  # fmt: skip
    title = f"group {name}: lag {data['lag']}, pending {data['pending']}"
    state.out.result(data, lambda console: console.print(make_table(title, columns, rows)))


@groups.command()
@click.argument("name")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@json_option
@pass_state
def pending(state: CliState, name: str, limit: int) -> None:
    """Entries of group NAME delivered and not acknowledged: who holds them, how long."""
    store = state.store()
    group = existing_group(store, name)
    entries = [
        _pending_json(partition, retry, entry)
        for partition in range(store.partitions)
        for retry in (False, True)
        for entry in group.pending_entries(partition, retry=retry)
    ]
    shown = entries[:limit]
    data = {"group": name, "pending": len(entries), "entries": shown}
    columns = ("partition", "entry", "consumer", "idle ms", "deliveries", "retry")
    rows = [
        (e["partition"], e["entry_id"], e["consumer"], e["idle_ms"], e["deliveries"], e["retry"])
        for e in shown
    ]
    title = f"group {name}: {len(entries)} pending"
    state.out.result(data, lambda console: console.print(make_table(title, columns, rows)))


def _pending_json(partition: int, retry: bool, entry: PendingEntry) -> dict[str, Any]:
    return {
        "partition": partition,
        "retry": retry,
        "entry_id": entry.entry_id,
        "position": None if retry else version_of_id(entry.entry_id),
        "consumer": entry.consumer,
        "idle_ms": entry.idle_ms,
        "deliveries": entry.deliveries,
    }


def dead_letter_json(letter: DeadLetter, *, traceback: bool = False) -> dict[str, Any]:
    """A dead letter: its id, the event, the last error and how often it was tried."""
    error: dict[str, Any] = {"type": letter.error.type, "message": letter.error.message}
    if traceback:
        error["traceback"] = letter.error.traceback
    return {
        "id": letter.id,
        "partition": letter.partition,
        "deliveries": letter.deliveries,
        "consumer": letter.consumer,
        "failed_at": letter.failed_at.isoformat(timespec="milliseconds"),
        "error": error,
        "event": event_json(letter.recorded) if letter.recorded is not None else None,
        "unreadable": letter.unreadable,
    }


@click.group()
def dlq() -> None:
    """Dead letters of a consumer group: list, show, replay, discard."""


@dlq.command("list")
@click.argument("group")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@json_option
@pass_state
def list_dead_letters(state: CliState, group: str, limit: int) -> None:
    """The dead letters of GROUP, oldest first."""
    letters = existing_group(state.store(), group).dead_letters(limit)
    data = {"group": group, "dead_letters": [dead_letter_json(letter) for letter in letters]}
    columns = ("id", "event", "deliveries", "consumer", "error")
    rows = [
        (
            letter.id,
            _letter_event(letter),
            letter.deliveries,
            letter.consumer,
            str(letter.error),
        )
        for letter in letters
    ]
    title = f"group {group}: {len(letters)} dead letters"
    state.out.result(data, lambda console: console.print(make_table(title, columns, rows)))


@dlq.command()
@click.argument("group")
@click.argument("dead_letter_id", metavar="ID")
@json_option
@pass_state
def show(state: CliState, group: str, dead_letter_id: str) -> None:
    """One dead letter of GROUP: the event, the error and its traceback."""
    found = existing_group(state.store(), group)
    letter = found.dead_letter(_checked_id(dead_letter_id))
    data = dead_letter_json(letter, traceback=True)
    state.out.result(data, lambda console: _render_letter(console, data))


def _letter_event(letter: DeadLetter) -> str:
    recorded = letter.recorded
    if recorded is None:
        return f"(unreadable: {letter.unreadable})"
    return (
        f"{recorded.aggregate_type}:{recorded.aggregate_id} "
        f"v{recorded.version} {recorded.event_type}"
    )


def _render_letter(console: Console, data: dict[str, Any]) -> None:
    event = data["event"]
    if event is None:
        console.print(f"[bold]{escape(data['id'])}[/]: unreadable: {escape(data['unreadable'])}")
    else:
        console.print(
            f"[bold]{escape(data['id'])}[/]: {event['aggregate_type']} "
            f"{escape(event['aggregate_id'])} v{event['version']} {event['event_type']} "
            f"(position {event['position']})"
        )
        console.print(f"data: {escape(compact_json(event['data']))}")
    console.print(
        f"failed {data['deliveries']} times, last by {escape(data['consumer'])} at "
        f"{data['failed_at']}: {escape(data['error']['type'])}: {escape(data['error']['message'])}"
    )
    console.print("traceback of the last failure:")
    console.print(escape(data["error"]["traceback"].rstrip()))


def _checked_id(value: str) -> str:
    partition, sep, entry = value.partition(":")
    if not (sep and partition.isdigit() and entry):
        raise click.BadParameter(f"{value!r} is not a dead letter id like 0:1700000000000-0")
    return value


@dlq.command()
@click.argument("group")
@click.argument("ids", nargs=-1, metavar="[ID]...")
@json_option
@pass_state
def replay(state: CliState, group: str, ids: Sequence[str]) -> None:
    """Send dead letters of GROUP (all, or the IDs given) back to its workers."""
    found = existing_group(state.store(), group)
    for value in ids:
        found.dead_letter(_checked_id(value))  # a typo must fail, not replay nothing
    count = found.replay_dead_letters(list(ids) or None)
    data = {"group": group, "replayed": count}
    state.out.result(data, lambda c: c.print(f"replayed {count} dead letter(s) of {group}"))


@dlq.command()
@click.argument("group")
@click.argument("ids", nargs=-1, metavar="[ID]...")
@click.option("--all", "everything", is_flag=True, help="Discard every dead letter of GROUP.")
@json_option
@pass_state
def discard(state: CliState, group: str, ids: Sequence[str], everything: bool) -> None:
    """Delete dead letters of GROUP for good: the IDs given, or --all."""
    if bool(ids) == everything:
        raise click.UsageError("give dead letter IDs or --all (not both)")
    found = existing_group(state.store(), group)
    for value in ids:
        found.dead_letter(_checked_id(value))
    count = found.discard_dead_letters(list(ids) or None)
    data = {"group": group, "discarded": count}
    state.out.result(data, lambda c: c.print(f"discarded {count} dead letter(s) of {group}"))


COMMANDS: list[click.Command] = [groups, dlq]
