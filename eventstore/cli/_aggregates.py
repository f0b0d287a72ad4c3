"""``replay`` and ``events``: one aggregate's state and how it was built, and its history."""

from __future__ import annotations

import click

from eventstore._core.errors import AggregateNotFound
from eventstore.cli._options import json_option, pass_state
from eventstore.cli._output import make_table
from eventstore.cli._replay import replay_aggregate
from eventstore.cli._shapes import event_json, event_row
from eventstore.cli._state import CliState

__all__ = ["COMMANDS"]


@click.command()
@click.argument("aggregate_type", metavar="TYPE")
@click.argument("aggregate_id", metavar="ID")
@click.option("--version", type=click.IntRange(min=1), help="Rebuild as of this version.")
@click.option("--no-snapshot", is_flag=True, help="Ignore the snapshot: replay every event.")
@json_option
@pass_state
def replay(
    state: CliState, aggregate_type: str, aggregate_id: str, version: int | None, no_snapshot: bool
) -> None:
    """The state of aggregate TYPE ID, and how it was built."""
    cls = state.domain().aggregate(aggregate_type)
    store = state.store()
    replayed = replay_aggregate(
        store,
        cls,
        aggregate_id,
        version,
        use_snapshot=not no_snapshot,
        progress=lambda total: state.out.progress("replaying", total),
    )
    state.out.result(replayed.as_json(), replayed.render)


@click.command()
@click.argument("aggregate_type", metavar="TYPE")
@click.argument("aggregate_id", metavar="ID")
@click.option(
    "--from", "from_version", type=click.IntRange(min=1), default=1, help="First version."
)
@click.option("--to", "to_version", type=click.IntRange(min=1), help="Last version.")
@click.option("--reverse", is_flag=True, help="Newest first.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many events.")
@json_option
@pass_state
def events(
    state: CliState,
    *,
    aggregate_type: str,
    aggregate_id: str,
    from_version: int,
    to_version: int | None,
    reverse: bool,
    limit: int | None,
) -> None:
    """The history of aggregate TYPE ID: one row per event."""
    store = state.store()
    found = store.read(
        aggregate_type,
        aggregate_id,
        from_version=from_version,
        to_version=to_version,
        backwards=reverse,
        limit=limit,
    )
    if not found and store.version_of(aggregate_type, aggregate_id) == 0:
        raise AggregateNotFound(aggregate_type, aggregate_id)
    data = {
        "aggregate_type": aggregate_type,
        "id": aggregate_id,
        "events": [event_json(recorded) for recorded in found],
    }
    rows = [event_row(recorded, with_aggregate=False) for recorded in found]
    title = f"{aggregate_type} {aggregate_id}: {len(found)} events"
    columns = ("position", "version", "type", "recorded at (UTC)", "data")
    state.out.result(data, lambda console: console.print(make_table(title, columns, rows)))


COMMANDS = [replay, events]
