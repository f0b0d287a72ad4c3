"""Workload 7: a catch-up subscription over 100,000 events, in typed events per second.

Ours: ``store.subscribe(page_size=1000)`` from the beginning (per page, XRANGE of the log
and one XREAD of the events, the next page's reads written before this page is decoded),
and ``store.read_all``. Baselines, on
the same server in the same run: raw XRANGE pages of 1000 over one plain stream holding
the very same entries (the fields our aggregate streams store, copied), nothing decoded;
raw XRANGE over our partition log (pointers only); and eventsourcing reading its
notification log in sections of 1000 and mapping each notification to its typed event
(what its process applications do to catch up).

The ceiling, against the same plain-stream baseline, is the least any typed catch-up over
our log design does, with no framework: per page, a raw XRANGE of 1000 log entries, one
XREAD of the events they point at (each stream from its first version in the page), and
pydantic's own validator on each event's payload; no checks, no ``RecordedEvent``. Like
ours, it writes the next page's reads before validating this page's events.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from benchmarks._context import Bench, Run
from benchmarks._domain import AGGREGATE_TYPE, new_account
from benchmarks._esbackends import sessions
from benchmarks._esdomain import Bank, new_es_account
from benchmarks._measure import rate, take_turns
from benchmarks._raw import copy_streams, xrange_all
from benchmarks._results import Row
from benchmarks._typed_pages import Spans, TypedPages
from eventstore import EventStore, ExpectedVersion

__all__ = ["fill", "run"]

PAGE = 1000


def fill(store: EventStore, aggregates: int, per: int) -> list[str]:
    streams = []
    for _ in range(aggregates):
        aggregate_id = str(uuid.uuid4())
        events = list(new_account(per).pending_events)
        store.append(AGGREGATE_TYPE, aggregate_id, events, ExpectedVersion.NO_STREAM)
        streams.append(store.keys.stream(AGGREGATE_TYPE, aggregate_id))
    return streams


def _subscribe(store: EventStore, total: int) -> None:
    with store.subscribe(page_size=PAGE) as subscription:
        for seen, recorded in enumerate(subscription, start=1):
            if recorded.event is None:
                raise RuntimeError("an event was not decoded")
            if seen == total:
                return


def _read_all(store: EventStore, total: int) -> None:
    seen = sum(1 for _ in store.read_all(page_size=PAGE))
    if seen != total:
        raise RuntimeError(f"read_all returned {seen} of {total} events")


def _typed_catch_up(bench: Bench, log: str, stream_prefix: str, total: int) -> Callable[[], object]:
    """The least any typed catch-up over our log does (``TypedPages``), on redis-py: the
    next page's two reads written before this page's events are validated."""
    raw = bench.client()
    pages = TypedPages(log, stream_prefix, PAGE)

    def write_next(connection: Any, page: list[Any]) -> tuple[Spans, bool]:
        commands, spans, more = pages.next_reads(page)
        connection.send_packed_command(connection.pack_commands(commands))
        return spans, more

    def catch_up() -> int:
        seen = 0
        connection: Any = raw.connection_pool.get_connection()  # replies read raw
        try:
            connection.send_command(*pages.log_page(0))
            page = connection.read_response()
            pending = write_next(connection, page) if page else None
            while pending is not None:
                spans, more = pending
                reply = connection.read_response()
                page = connection.read_response() if more else []
                # written ahead: the server reads page n + 1 while page n is validated
                pending = write_next(connection, page) if page else None
                seen += pages.validate(reply, spans)
        finally:
            raw.connection_pool.release(connection)
        if seen != total:
            raise RuntimeError(f"the ceiling read {seen} of {total} events")
        return seen

    return catch_up


def _es_catch_up(app: Bank, total: int) -> None:
    start, seen = 1, 0
    while True:
        notifications = app.notification_log.select(start, PAGE)
        for notification in notifications:
            app.mapper.to_domain_event(notification)
        seen += len(notifications)
        if len(notifications) < PAGE:
            break
        start = notifications[-1].id + 1
    if seen != total:
        raise RuntimeError(f"eventsourcing caught up with {seen} of {total} notifications")


def _es_run(app: Bank, aggregates: int, per: int) -> Run:
    for _ in range(aggregates):
        app.save(new_es_account(per))
    total = aggregates * per
    return lambda: {"rate": rate(total, lambda: _es_catch_up(app, total))}


def run(bench: Bench) -> list[Row]:
    """Fill a fresh namespace (and each eventsourcing backend), then read it all, in turns."""
    sizes = bench.sizes
    per = sizes.events_per_aggregate
    aggregates = sizes.catch_up_events // per
    total = aggregates * per
    store, client = bench.store(), bench.client()
    plain = bench.raw_key("plain")
    copy_streams(client, fill(store, aggregates, per), plain)
    log = store.keys.log(0)
    # the stream key of a pointer's <type>:<id> in partition 0, from the key schema
    prefix = store.keys.stream(AGGREGATE_TYPE, "").removesuffix(f"{AGGREGATE_TYPE}:")
    ceiling = _typed_catch_up(bench, log, prefix, total)
    runs: dict[str, Run] = {
        "plain": lambda: {"rate": rate(total, lambda: xrange_all(client, plain, PAGE))},
        "ceiling": lambda: {"rate": rate(total, ceiling)},
        "log": lambda: {"rate": rate(total, lambda: xrange_all(client, log, PAGE))},
        "subscribe": lambda: {"rate": rate(total, lambda: _subscribe(store, total))},
        "read_all": lambda: {"rate": rate(total, lambda: _read_all(store, total))},
    }
    with sessions(bench.backends) as makers:
        for name, make in makers.items():
            runs[name] = _es_run(make(Bank), aggregates, per)
        stats = take_turns(sizes.runs, runs)
    measure = f"catch up on {total:,} events ({aggregates:,} aggregates x {per})"
    note = bench.note("catch_up_events")
    subscribe = stats["subscribe"]["rate"]
    return [
        Row(
            "w7.subscribe.plain",
            7,
            measure,
            "ev/s",
            subscribe,
            "raw XRANGE pages of 1000, one plain stream of the same entries",
            stats["plain"]["rate"],
            ours_name="store.subscribe (typed events)",
            note=note,
        ),
        Row(
            "w7.ceiling.plain",
            7,
            measure,
            "ev/s",
            stats["ceiling"]["rate"],
            "raw XRANGE pages of 1000, one plain stream of the same entries",
            stats["plain"]["rate"],
            ours_name="ceiling: raw XRANGE pages of 1000 of our log + one XREAD of the page's "
            "events + pydantic validation of each event, next page read ahead, no framework",
            note=note,
        ),
        Row(
            "w7.subscribe.log",
            7,
            measure,
            "ev/s",
            subscribe,
            "raw XRANGE pages of 1000 over our partition log (pointers only)",
            stats["log"]["rate"],
            ours_name="store.subscribe (typed events)",
            note=note,
        ),
        Row(
            "w7.read_all.plain",
            7,
            measure,
            "ev/s",
            stats["read_all"]["rate"],
            "raw XRANGE pages of 1000, one plain stream of the same entries",
            stats["plain"]["rate"],
            ours_name="store.read_all (typed events)",
            note=note,
        ),
        *bench.es_rows(
            "w7.subscribe",
            7,
            measure,
            "ev/s",
            subscribe,
            {name: s["rate"] for name, s in stats.items()},
            note=note,
        ),
    ]
