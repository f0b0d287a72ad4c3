"""``stats``: aggregates and events per type, bytes per event, log sizes, largest streams."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from typing import Any

import click
import redis
from rich.console import Console

from eventstore._redis.store import EventStore
from eventstore.cli._fetch import aggregate_ids, aggregate_types, count_ids
from eventstore.cli._options import json_option, pass_state
from eventstore.cli._output import make_table
from eventstore.cli._state import CliState

__all__ = ["COMMANDS", "collect_stats"]

_BATCH = 500
_LARGEST = 10
Advance = Callable[[int], None]


def _per_event(size: int | None, events: int) -> float | None:
    return round(size / events, 1) if size is not None and events else None


def _memory(pipe: Any, key: str) -> None:
    pipe.execute_command("MEMORY USAGE", key, "SAMPLES", "0")


def _batch_sizes(store: EventStore, aggregate_type: str, ids: Sequence[str]) -> list[Any]:
    keys = [store.keys.stream(aggregate_type, aggregate_id) for aggregate_id in ids]
    with store.client.pipeline(transaction=False) as pipe:
        for aggregate_id, key in zip(ids, keys, strict=True):
            pipe.xlen(key)
            _memory(pipe, key)
            pipe.exists(store.keys.snapshot(aggregate_type, aggregate_id))
        # MEMORY USAGE can be disabled (managed services): sizes become unknown, not an error
        replies = pipe.execute(raise_on_error=False)
    return [replies[i : i + 3] for i in range(0, len(replies), 3)]


def _type_stats(
    store: EventStore, aggregate_type: str, largest: list[tuple[int, str, str]], advance: Advance
) -> dict[str, Any]:
    events = snapshots = aggregates = 0
    size: int | None = 0
    ids = list(aggregate_ids(store, aggregate_type))
    for start in range(0, len(ids), _BATCH):
        chunk = ids[start : start + _BATCH]
        for aggregate_id, (length, memory, has_snapshot) in zip(
            chunk, _batch_sizes(store, aggregate_type, chunk), strict=True
        ):
            aggregates += 1
            events += int(length)
            snapshots += int(has_snapshot)
            size = (
                None
                if size is None or isinstance(memory, redis.RedisError)
                else size + int(memory or 0)
            )
            heapq.heappush(largest, (int(length), aggregate_type, aggregate_id))
            if len(largest) > _LARGEST:
                heapq.heappop(largest)
        advance(len(chunk))
    return {
        "aggregate_type": aggregate_type,
        "aggregates": aggregates,
        "events": events,
        "bytes": size,
        "bytes_per_event": _per_event(size, events),
        "snapshots": snapshots,
    }


def _log_stats(store: EventStore) -> list[dict[str, Any]]:
    out = []
    for partition in range(store.partitions):
        key = store.keys.log(partition)
        with store.client.pipeline(transaction=False) as pipe:
            pipe.xlen(key)
            _memory(pipe, key)
            length, memory = pipe.execute(raise_on_error=False)
        size = None if isinstance(memory, redis.RedisError) else int(memory or 0)
        out.append(
            {
                "partition": partition,
                "entries": int(length),
                "last_position": store.last_position(partition),
                "bytes": size,
                "bytes_per_entry": _per_event(size, int(length)),
            }
        )
    return out


def collect_stats(store: EventStore, advance: Advance = lambda _n: None) -> dict[str, Any]:
    """Everything ``stats`` shows, as its JSON document."""
    largest: list[tuple[int, str, str]] = []
    live = store.live_stats()
    types = [
        {
            **_type_stats(store, t, largest, advance),
            "live_subscribers": live.by_type.get(t, 0),
        }
        for t in aggregate_types(store)
    ]
    sizes = [t["bytes"] for t in types]
    total_bytes = None if None in sizes else sum(sizes)
    total_events = sum(t["events"] for t in types)
    return {
        "namespace": store.namespace,
        "partitions": store.partitions,
        "totals": {
            "aggregates": sum(t["aggregates"] for t in types),
            "events": total_events,
            "bytes": total_bytes,
            "bytes_per_event": _per_event(total_bytes, total_events),
        },
        "aggregate_types": types,
        "logs": _log_stats(store),
        "live": {"channels": dict(sorted(live.channels.items())), "patterns": live.patterns},
        "largest_streams": [
            {"aggregate_type": t, "id": i, "events": n}
            for n, t, i in sorted(largest, key=lambda item: (-item[0], item[1], item[2]))
        ],
    }


def _render(console: Console, data: dict[str, Any]) -> None:
    totals = data["totals"]
    console.print(
        f"namespace {data['namespace']!r} ({data['partitions']} partitions): "
        f"{totals['aggregates']} aggregates, {totals['events']} events, "
        f"{totals['bytes_per_event'] or '?'} bytes/event"
    )
    live = data["live"]
    console.print(
        f"live now: {sum(live['channels'].values())} subscribers on {len(live['channels'])} "
        f"channels, {live['patterns']} pattern subscriptions on the server"
    )
    _table(console, "aggregate types", data["aggregate_types"], _TYPE_COLUMNS)
    _table(console, "partition logs", data["logs"], _LOG_COLUMNS)
    _table(console, "largest streams", data["largest_streams"], _LARGEST_COLUMNS)


_TYPE_COLUMNS = {
    "type": "aggregate_type", "aggregates": "aggregates", "events": "events", "bytes": "bytes",
    "bytes/event": "bytes_per_event", "snapshots": "snapshots", "live subs": "live_subscribers",
}  # fmt: skip
_LOG_COLUMNS = {
    "partition": "partition", "entries": "entries", "last position": "last_position",
    "bytes": "bytes", "bytes/entry": "bytes_per_entry",
}  # fmt: skip
_LARGEST_COLUMNS = {"type": "aggregate_type", "id": "id", "events": "events"}


def _table(
    console: Console, title: str, items: list[dict[str, Any]], columns: dict[str, str]
) -> None:
    rows = [[item[key] for key in columns.values()] for item in items]
    console.print(make_table(title, list(columns), rows))


@click.command()
@json_option
@pass_state
def stats(state: CliState) -> None:
    """Aggregates and events per type, bytes per event, log sizes, largest streams."""
    store = state.store()
    total = sum(count_ids(store, t) for t in aggregate_types(store))
    with state.out.progress("counting", total) as advance:
        data = collect_stats(store, advance)
    state.out.result(data, lambda console: _render(console, data))


COMMANDS: list[click.Command] = [stats]
