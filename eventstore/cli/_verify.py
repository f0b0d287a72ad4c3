"""``verify``: the integrity of a whole namespace, each problem reported with its key.

Checked: aggregate stream versions contiguous from 1 and every event decodable; every
stream indexed; every log position present (gap-free) and pointing at an event of its
type that records that position; position counters equal to the logs' last positions;
snapshots not beyond their stream and equal to a replay; no key outside the key schema.
SCAN is used on purpose: this is an offline check, never a hot path.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, cast

import attrs
import click
import redis
from rich.console import Console

from eventstore._core.errors import StoredDataError
from eventstore._core.log import parse_pointers, resolve_call
from eventstore._core.records import Entries
from eventstore._redis.clients import load_script
from eventstore._redis.store import EventStore
from eventstore.cli._checks import (
    KeyKind,
    Problem,
    check_entry,
    check_ids,
    check_pointers,
    check_position_counter,
    classify_key,
    position_of,
)
from eventstore.cli._domain import Domain
from eventstore.cli._fetch import scan_keys, text
from eventstore.cli._options import json_option, pass_state
from eventstore.cli._output import make_table
from eventstore.cli._snapshots import snapshot_problems
from eventstore.cli._state import CliState

__all__ = ["COMMANDS", "VerifyReport", "verify_namespace"]

_PAGE = 1000
Advance = Callable[[int], None]
Progress = Callable[[int], AbstractContextManager[Advance]]


@attrs.define
class VerifyReport:
    """What ``verify`` looked at and what it found."""

    namespace: str
    partitions: int
    problems: list[Problem] = attrs.field(factory=list)
    counts: dict[str, int] = attrs.field(
        factory=lambda: dict.fromkeys(("keys", "streams", "events", "log_entries", "snapshots"), 0)
    )
    unchecked_types: set[str] = attrs.field(factory=set)
    trimmed: dict[int, int] = attrs.field(factory=dict)  # partition -> first position kept

    def as_json(self) -> dict[str, Any]:
        """The documented ``verify --json`` shape."""
        return {
            "namespace": self.namespace,
            "partitions": self.partitions,
            "ok": not self.problems,
            "checked": dict(self.counts),
            "problems": [problem.as_json() for problem in self.problems],
            "unchecked_aggregate_types": sorted(self.unchecked_types),
            "trimmed_logs": [
                {"partition": p, "first_position": first}
                for p, first in sorted(self.trimmed.items())
            ],
        }

    def render(self, console: Console) -> None:
        """Problems as a table, and what was checked."""
        c = self.counts
        summary = (
            f"namespace {self.namespace!r}: {c['keys']} keys, {c['streams']} streams, "
            f"{c['events']} events, {c['log_entries']} log entries, {c['snapshots']} snapshots"
        )
        if self.unchecked_types:
            console.print(
                "[yellow]snapshots of "
                + ", ".join(sorted(self.unchecked_types))
                + " only checked against stream versions (pass --app to replay them)[/]"
            )
        for partition, first in sorted(self.trimmed.items()):
            console.print(f"log of partition {partition} trimmed: it starts at position {first}")
        if not self.problems:
            console.print(f"[green]OK[/] {summary}: no problems")
            return
        rows = [(p.kind, p.key, p.detail) for p in self.problems]
        console.print(make_table(None, ("kind", "key", "detail"), rows))
        console.print(f"[red]{len(self.problems)} problems[/] in {summary}")


def _inventory(store: EventStore, report: VerifyReport) -> dict[str, KeyKind]:
    ns = store.namespace
    keys = {*scan_keys(store, f"{{{ns}:p*"), *scan_keys(store, f"{ns}:*")}
    kinds: dict[str, KeyKind] = {}
    for key in sorted(keys):
        kind = classify_key(store.keys, key)
        if kind is None:
            detail = f"not a key of namespace {ns!r} ({store.partitions} partitions)"
            report.problems.append(Problem("outside-schema", key, detail))
        elif kind.kind == "misplaced":
            right = store.keys.partition_of(kind.aggregate_id)
            detail = f"id {kind.aggregate_id!r} belongs to partition {right}"
            report.problems.append(Problem("misplaced", key, detail))
        else:
            kinds[key] = kind
    report.counts["keys"] = len(keys)
    return kinds


def _verify_stream(store: EventStore, key: str, kind: KeyKind, report: VerifyReport) -> int:
    last, start = 0, "-"
    while True:
        entries = _page(store, key, start, report)
        if not entries:
            break
        problems, last = check_ids(key, [entry_id for entry_id, _ in entries], last, "version")
        report.problems += problems
        for entry_id, fields in entries:
            report.problems += check_entry(key, entry_id, fields, kind.partition or 0)
        report.counts["events"] += len(entries)
        start = "(" + text(entries[-1][0])
    _verify_indexed(store, key, kind, report)
    return last


def _page(store: EventStore, key: str, start: str, report: VerifyReport) -> Entries:
    """A page of a stream; a key of another type is a problem (and an empty page)."""
    try:
        return cast(Entries, store.client.xrange(key, start, "+", count=_PAGE))
    except redis.ResponseError as exc:
        if "WRONGTYPE" not in str(exc):
            raise
    found = text(store.client.type(key))
    report.problems.append(Problem("wrong-type", key, f"the key holds a {found}, not a stream"))
    return []


def _verify_indexed(store: EventStore, key: str, kind: KeyKind, report: VerifyReport) -> None:
    partition = kind.partition or 0
    with store.client.pipeline(transaction=False) as pipe:
        pipe.sismember(store.keys.index(partition, kind.aggregate_type), kind.aggregate_id)
        pipe.sismember(store.keys.types(partition), kind.aggregate_type)
        in_index, in_types = pipe.execute()
    if not (in_index and in_types):
        where = "index" if not in_index else "types set"
        report.problems.append(Problem("unindexed", key, f"the stream is missing from the {where}"))


def _trimmed_before(report: VerifyReport, partition: int, first_id: bytes) -> int:
    # trim_log removes a prefix of the log (below the safe trim point): a log starting
    # after position 1 was trimmed, not damaged; only gaps after its first entry count
    first = position_of(first_id)
    if first is None or first <= 1:
        return 0
    report.trimmed[partition] = first
    return first - 1


def _verify_log(store: EventStore, partition: int, report: VerifyReport, advance: Advance) -> None:
    log_key = store.keys.log(partition)
    last, start = 0, "-"
    while True:
        entries = _page(store, log_key, start, report)
        if not entries:
            break
        if start == "-":
            last = _trimmed_before(report, partition, entries[0][0])
        problems, last = check_ids(log_key, [entry_id for entry_id, _ in entries], last, "position")
        report.problems += problems + _verify_pointers(store, partition, entries)
        report.counts["log_entries"] += len(entries)
        advance(len(entries))
        start = "(" + text(entries[-1][0])
    _verify_log_end(store, partition, report, last, empty=start == "-")


def _verify_pointers(store: EventStore, partition: int, entries: Entries) -> list[Problem]:
    log_key, problems, pointers = store.keys.log(partition), [], []
    for entry in entries:
        try:
            pointers += parse_pointers(store.keys, partition, [entry])
        except StoredDataError as exc:
            problems.append(Problem("bad-log-entry", log_key, str(exc)))
    if pointers:
        call = resolve_call(pointers)
        resolve = load_script(store.client, "resolve")
        try:
            problems += check_pointers(log_key, call, resolve(keys=call.keys, args=call.args))
        except redis.ResponseError as exc:
            if "WRONGTYPE" not in str(exc):
                raise
            problems += _pointers_into_wrong_types(store, log_key, call.keys)
    return problems


def _pointers_into_wrong_types(
    store: EventStore, log_key: str, keys: Sequence[str]
) -> list[Problem]:
    found = {key: text(store.client.type(key)) for key in keys}
    return [
        Problem("dangling-pointer", log_key, f"entries point into {key}, which holds a {kind}")
        for key, kind in found.items()
        if kind not in ("stream", "none")
    ]


def _verify_log_end(
    store: EventStore, partition: int, report: VerifyReport, last: int, *, empty: bool
) -> None:
    log_key = store.keys.log(partition)
    generated = _last_generated(store, log_key)
    if empty and generated:  # an empty log that handed out positions: all trimmed
        report.trimmed[partition] = generated + 1
    if last and last < generated:
        detail = f"positions {last + 1}..{generated} are missing at the end of the log"
        report.problems.append(Problem("gap", log_key, detail))
    report.problems += check_position_counter(
        store.keys.position(partition), store.last_position(partition), generated
    )


def _last_generated(store: EventStore, log_key: str) -> int:
    # the log's own id generator: it survives trimming (and XDEL), so the counter is
    # compared with it rather than with the last entry left
    try:
        info = store.client.xinfo_stream(log_key)
    except redis.ResponseError:  # no log yet
        return 0
    return position_of(info["last-generated-id"]) or 0


def verify_namespace(
    store: EventStore, domain: Domain, progress: Progress | None = None
) -> VerifyReport:
    """Run every check over the namespace of ``store``.

    ``progress(total)`` is entered once the amount of work is known and yields the
    function to call as work gets done.
    """
    report = VerifyReport(store.namespace, store.partitions)
    kinds = _inventory(store, report)
    per_kind = [kind.kind for kind in kinds.values()]
    total = per_kind.count("stream") + per_kind.count("snapshot") + _logged(store)
    with (progress or _no_progress)(total) as advance:
        _check_all(store, domain, kinds, report, advance)
    return report


def _check_all(
    store: EventStore,
    domain: Domain,
    kinds: dict[str, KeyKind],
    report: VerifyReport,
    advance: Advance,
) -> None:
    for key, kind in kinds.items():
        if kind.kind == "stream":
            _verify_stream(store, key, kind, report)
            report.counts["streams"] += 1
            advance(1)
    for partition in range(store.partitions):
        _verify_log(store, partition, report, advance)
    for kind in kinds.values():
        if kind.kind == "snapshot":
            cls = domain.aggregates.get(kind.aggregate_type)
            if cls is None:
                report.unchecked_types.add(kind.aggregate_type)
            _, problems = snapshot_problems(store, cls, kind.aggregate_type, kind.aggregate_id)
            report.problems += problems
            report.counts["snapshots"] += 1
            advance(1)


@contextlib.contextmanager
def _no_progress(_total: int) -> Iterator[Advance]:
    yield lambda _n: None


def _logged(store: EventStore) -> int:
    with store.client.pipeline(transaction=False) as pipe:
        for partition in range(store.partitions):
            pipe.xlen(store.keys.log(partition))
        # a log of the wrong type counts 0 here; _verify_log reports it
        return sum(n for n in pipe.execute(raise_on_error=False) if isinstance(n, int))


@click.command()
@json_option
@pass_state
def verify(state: CliState) -> None:
    """Check the integrity of the whole namespace; exit 1 if anything is wrong."""
    store = state.store()
    report = verify_namespace(
        store, state.domain(), lambda total: state.out.progress("verifying", total)
    )
    state.out.result(report.as_json(), report.render)
    if report.problems:
        click.get_current_context().exit(1)


COMMANDS: list[click.Command] = [verify]
