"""``log`` (and, with subscriptions, ``tail``): the partition logs, in position order."""

from __future__ import annotations

import threading
from typing import Any

import click
from rich.markup import escape

from eventstore._core.checkpoint import FROM_NOW, Checkpoint
from eventstore._core.records import RecordedEvent
from eventstore._redis.store import EventStore
from eventstore._redis.subscription import CatchUpSubscription
from eventstore.cli._options import json_option, pass_state
from eventstore.cli._output import compact_json, make_table
from eventstore.cli._shapes import event_json, event_row
from eventstore.cli._state import CliState

__all__ = ["COMMANDS", "read_log_page"]

_PAGE = 1000
# short blocks so --timeout and Ctrl-C take effect quickly
_TAIL_BLOCK_MS = 200


def read_log_page(
    store: EventStore,
    partition: int,
    after: int,
    *,
    limit: int,
    event_types: tuple[str, ...],
    aggregate_types: tuple[str, ...],
) -> tuple[list[RecordedEvent], int]:
    """Up to ``limit`` matching events after ``after``, and the position to resume after."""
    found: list[RecordedEvent] = []
    while len(found) < limit:
        page = store.read_log(
            partition,
            after,
            limit=_PAGE,
            event_types=event_types or None,
            aggregate_types=aggregate_types or None,
        )
        if page.scanned == 0:
            break
        wanted = limit - len(found)
        found += page.events[:wanted]
        # resume after the last event shown, or after the whole page if all of it was shown
        after = (
            page.events[wanted - 1].position if len(page.events) > wanted else page.last_position
        )
    return found, after


def partitions_of(store: EventStore, partition: int | None) -> range:
    """Every partition, or just ``partition`` (checked)."""
    if partition is None:
        return range(store.partitions)
    if not 0 <= partition < store.partitions:
        raise click.BadParameter(
            f"partition {partition} is not in 0..{store.partitions - 1}", param_hint="--partition"
        )
    return range(partition, partition + 1)


@click.command()
@click.option("--after", type=click.IntRange(min=0), default=0, help="Start after this position.")
@click.option("--type", "event_types", multiple=True, help="Only this event type (repeatable).")
@click.option(
    "--aggregate-type", "aggregate_types", multiple=True, help="Only this aggregate type."
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="At most this many events per partition.",
)
@click.option("--partition", type=click.IntRange(min=0), help="Only this partition.")
@json_option
@pass_state
def log(
    state: CliState,
    *,
    after: int,
    event_types: tuple[str, ...],
    aggregate_types: tuple[str, ...],
    limit: int,
    partition: int | None,
) -> None:
    """The global log: every event in position order, per partition."""
    store = state.store()
    shown: list[RecordedEvent] = []
    resume: dict[str, int] = {}
    for part in partitions_of(store, partition):
        found, last = read_log_page(
            store,
            part,
            after,
            limit=limit,
            event_types=event_types,
            aggregate_types=aggregate_types,
        )
        shown += found
        resume[str(part)] = last
    data: dict[str, Any] = {
        "events": [event_json(recorded) for recorded in shown],
        "last_positions": resume,
    }
    rows = [[r.partition, *event_row(r, with_aggregate=True)] for r in shown]
    columns = ("partition", "position", "version", "aggregate", "type", "recorded at (UTC)", "data")
    title = f"{len(shown)} events (resume with --after {max(resume.values(), default=0)})"
    state.out.result(data, lambda console: console.print(make_table(title, columns, rows)))


def _stop_later(subscription: CatchUpSubscription, seconds: float | None) -> threading.Timer | None:
    if seconds is None:
        return None
    timer = threading.Timer(seconds, subscription.stop)
    timer.daemon = True
    timer.start()
    return timer


def _follow(state: CliState, subscription: CatchUpSubscription, count: int | None) -> int:
    seen = 0
    for recorded in subscription:
        seen += 1
        if state.json_mode:
            state.out.json_line(
                {**event_json(recorded), "checkpoint": str(subscription.checkpoint)}
            )
        else:
            row = event_row(recorded, with_aggregate=True)
            state.out.console.print(
                f"{recorded.partition}:{row[0]} {escape(str(row[2]))} v{row[1]} {row[3]} "
                f"{escape(compact_json(row[5]))}",
                soft_wrap=True,
            )
        if count is not None and seen >= count:
            break
    return seen


@click.command()
@click.option("--type", "event_types", multiple=True, help="Only this event type (repeatable).")
@click.option(
    "--aggregate-type", "aggregate_types", multiple=True, help="Only this aggregate type."
)
@click.option(
    "--after",
    default=FROM_NOW,
    show_default=True,
    metavar="CHECKPOINT",
    help="Start after this checkpoint ('now', a position, or one per partition: '3,0,7').",
)
@click.option("--from-start", is_flag=True, help="Start at the beginning of the log.")
@click.option("--count", type=click.IntRange(min=1), help="Stop after this many events.")
@click.option("--timeout", type=click.FloatRange(min=0), help="Stop after this many seconds.")
@json_option
@pass_state
def tail(
    state: CliState,
    *,
    event_types: tuple[str, ...],
    aggregate_types: tuple[str, ...],
    after: str,
    from_start: bool,
    count: int | None,
    timeout: float | None,
) -> None:
    """Follow the global log live (JSON lines with --json); Ctrl-C stops."""
    store = state.store()
    subscription = store.subscribe(
        None if from_start else _checkpoint(after),
        event_types=event_types or None,
        aggregate_types=aggregate_types or None,
        block_ms=_TAIL_BLOCK_MS,
    )
    with subscription:
        timer = _stop_later(subscription, timeout)
        try:
            seen = _follow(state, subscription, count)
        except KeyboardInterrupt:
            seen = -1
        finally:
            if timer is not None:
                timer.cancel()
        resume = str(subscription.checkpoint)
    shown = "stopped" if seen < 0 else f"{seen} events"
    state.out.note(f"{shown}; resume with --after {resume}")


def _checkpoint(after: str) -> str:
    if after.strip() == FROM_NOW:
        return FROM_NOW
    try:
        Checkpoint.parse(after)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--after") from exc
    return after


COMMANDS: list[click.Command] = [log, tail]
