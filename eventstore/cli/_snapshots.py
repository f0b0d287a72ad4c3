"""``snapshots take | drop | verify``: write, remove and check aggregate snapshots."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console

from aggregates import Aggregate
from eventstore._core.codec import now_ms
from eventstore._core.errors import AggregateNotFound, StoredDataError
from eventstore._core.records import Snapshot
from eventstore._redis.repository import Repository
from eventstore._redis.store import EventStore
from eventstore.cli._checks import Problem, check_snapshot
from eventstore.cli._fetch import aggregate_ids, count_ids
from eventstore.cli._options import json_option, pass_state
from eventstore.cli._output import make_table
from eventstore.cli._shapes import iso_ms
from eventstore.cli._state import CliState

__all__ = ["COMMANDS", "snapshot_problems"]

_DROP_BATCH = 500


def snapshot_problems(
    store: EventStore, cls: type[Aggregate] | None, aggregate_type: str, aggregate_id: str
) -> tuple[str, list[Problem]]:
    """Check one aggregate's snapshot against its stream (and a replay, if ``cls`` is known).

    Returns a status (``none``, ``ok``, ``other-shape``, ``unchecked``, ``bad``) and problems.
    """
    key = store.keys.snapshot(aggregate_type, aggregate_id)
    try:
        snapshot = store.read_snapshot(aggregate_type, aggregate_id)
    except StoredDataError as exc:  # a SnapshotError, or a key of the wrong type
        return "bad", [Problem("bad-snapshot", key, f"field {exc.field}: {exc.reason}")]
    if snapshot is None:
        return "none", []
    current = store.version_of(aggregate_type, aggregate_id)
    fingerprint = cls.schema_fingerprint() if cls is not None else None
    replayed = None
    if cls is not None and snapshot.fingerprint == fingerprint and 0 < snapshot.version <= current:
        replayed = _replayed_state(store, cls, aggregate_id, snapshot.version)
    problems = check_snapshot(key, snapshot, current, fingerprint, replayed)
    if problems:
        return "bad", problems
    if fingerprint is None or replayed is None:
        return "unchecked" if fingerprint is None else "other-shape", []
    return "ok", []


def _replayed_state(
    store: EventStore, cls: type[Aggregate], aggregate_id: str, version: int
) -> dict[str, Any] | None:
    try:
        rebuilt = Repository(store, cls).get(aggregate_id, version, use_snapshot=False)
    except StoredDataError:
        return None  # the events themselves are bad: verify reports them on their own key
    return rebuilt.state_as_json()


@click.group()
def snapshots() -> None:
    """Take, drop and verify aggregate snapshots."""


@snapshots.command()
@click.argument("aggregate_type", metavar="TYPE")
@click.argument("aggregate_id", metavar="ID")
@json_option
@pass_state
def take(state: CliState, aggregate_type: str, aggregate_id: str) -> None:
    """Write a snapshot of TYPE ID at its current version."""
    cls = state.domain().aggregate(aggregate_type)
    store = state.store()
    aggregate = Repository(store, cls).get(aggregate_id)
    snapshot = Snapshot(
        aggregate.version, cls.schema_fingerprint(), aggregate.state_as_json(), now_ms()
    )
    written = store.write_snapshot(aggregate_type, aggregate_id, snapshot)
    data = {
        "aggregate_type": aggregate_type,
        "id": aggregate_id,
        "version": snapshot.version,
        "fingerprint": snapshot.fingerprint,
        "written": written,
        "taken_at": iso_ms(snapshot.taken_at_ms),
    }
    verb = "took" if written else "kept the existing (same or newer)"
    state.out.result(
        data,
        lambda c: c.print(
            f"{verb} snapshot of {aggregate_type} {aggregate_id} at version {snapshot.version}"
        ),
    )


@snapshots.command()
@click.argument("aggregate_type", metavar="TYPE")
@click.argument("aggregate_id", metavar="[ID]", required=False)
@json_option
@pass_state
def drop(state: CliState, aggregate_type: str, aggregate_id: str | None) -> None:
    """Delete the snapshot of TYPE ID, or of every aggregate of TYPE."""
    store = state.store()
    if aggregate_id is not None:
        if store.version_of(aggregate_type, aggregate_id) == 0:
            raise AggregateNotFound(aggregate_type, aggregate_id)
        dropped = int(store.drop_snapshot(aggregate_type, aggregate_id))
    else:
        dropped = _drop_all(state, store, aggregate_type)
    data = {"aggregate_type": aggregate_type, "id": aggregate_id, "dropped": dropped}
    which = aggregate_id if aggregate_id is not None else "(all)"
    state.out.result(
        data, lambda c: c.print(f"dropped {dropped} snapshot(s) of {aggregate_type} {which}")
    )


def _drop_all(state: CliState, store: EventStore, aggregate_type: str) -> int:
    dropped = 0
    batch: list[str] = []
    with state.out.progress("dropping", count_ids(store, aggregate_type)) as advance:
        for aggregate_id in aggregate_ids(store, aggregate_type):
            batch.append(store.keys.snapshot(aggregate_type, aggregate_id))
            if len(batch) >= _DROP_BATCH:
                dropped += int(store.client.delete(*batch))
                advance(len(batch))
                batch = []
        if batch:
            dropped += int(store.client.delete(*batch))
            advance(len(batch))
    return dropped


@snapshots.command("verify")
@click.argument("aggregate_type", metavar="TYPE")
@json_option
@pass_state
def verify_snapshots(state: CliState, aggregate_type: str) -> None:
    """Rebuild every TYPE aggregate from its events and compare with its snapshot."""
    cls = state.domain().aggregate(aggregate_type)
    store = state.store()
    counts = {"ok": 0, "none": 0, "other-shape": 0, "bad": 0, "unchecked": 0}
    problems: list[Problem] = []
    with state.out.progress("verifying", count_ids(store, aggregate_type)) as advance:
        for aggregate_id in aggregate_ids(store, aggregate_type):
            status, found = snapshot_problems(store, cls, aggregate_type, aggregate_id)
            counts[status] += 1
            problems += found
            advance(1)
    data = {
        "aggregate_type": aggregate_type,
        "ok": not problems,
        "checked": counts["ok"] + counts["bad"],
        "consistent": counts["ok"],
        "without_snapshot": counts["none"],
        "other_shape": counts["other-shape"],
        "problems": [problem.as_json() for problem in problems],
    }
    state.out.result(data, lambda c: _render_verify(c, data, problems))
    if problems:
        click.get_current_context().exit(1)


def _render_verify(console: Console, data: dict[str, Any], problems: list[Problem]) -> None:
    console.print(
        f"{data['aggregate_type']}: {data['checked']} snapshots checked, "
        f"{data['consistent']} consistent with replay, {data['without_snapshot']} aggregates "
        f"without one, {data['other_shape']} of another shape (ignored by loads)"
    )
    if problems:
        rows = [(p.kind, p.key, p.detail) for p in problems]
        console.print(make_table(f"{len(problems)} problems", ("kind", "key", "detail"), rows))


COMMANDS = [snapshots]
