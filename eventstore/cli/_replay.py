"""Rebuilding one aggregate for ``replay``, saying how it was built.

A short tail is loaded the way applications load (one round trip: snapshot + events);
a long one is read in pages with a progress bar, so replaying a huge aggregate shows
where it is instead of waiting on one enormous reply.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import attrs
from rich.console import Console
from rich.markup import escape

from aggregates import Aggregate, AggregateError, MissingProjector
from eventstore._core.errors import AggregateNotFound, SnapshotError, StoredDataError
from eventstore._core.records import RecordedEvent, Snapshot
from eventstore._redis.repository import Repository
from eventstore._redis.store import EventStore
from eventstore.cli._output import make_table

__all__ = ["PAGE", "Replayed", "replay_aggregate"]

PAGE = 1000
"""Tails longer than this are read in pages of this many events."""

Advance = Callable[[int], None]
Progress = Callable[[int], AbstractContextManager[Advance]]

_SKIPPED = {
    "fingerprint": "taken by another shape of the class (fingerprint differs)",
    "newer": "it is newer than the version asked for",
    "invalid": "its stored version is not a positive integer",
}


@attrs.frozen
class Replayed:
    """An aggregate rebuilt by ``replay``, with how it was built."""

    aggregate: Aggregate
    current_version: int
    snapshot_version: int | None
    snapshot_skipped: str | None
    events_replayed: int
    elapsed_ms: float

    def as_json(self) -> dict[str, Any]:
        """The documented ``replay --json`` shape."""
        return {
            "aggregate_type": self.aggregate.aggregate_type,
            "id": self.aggregate.id,
            "version": self.aggregate.version,
            "current_version": self.current_version,
            "state": self.aggregate.state_as_json(),
            "snapshot_version": self.snapshot_version,
            "snapshot_skipped": self.snapshot_skipped,
            "events_replayed": self.events_replayed,
            "elapsed_ms": round(self.elapsed_ms, 3),
        }

    def render(self, console: Console) -> None:
        """The state as a table, after how it was built."""
        agg = self.aggregate
        latest = (
            "latest" if agg.version == self.current_version else f"latest is {self.current_version}"
        )
        console.print(
            f"[bold]{agg.aggregate_type} {escape(agg.id)}[/] at version {agg.version} ({latest})"
        )
        source = f"snapshot v{self.snapshot_version} + " if self.snapshot_version else ""
        console.print(
            f"built from {source}{self.events_replayed} events in {self.elapsed_ms:.1f} ms"
        )
        if self.snapshot_skipped:
            console.print(f"[yellow]snapshot not used: {self.snapshot_skipped}[/]")
        rows = list(self.aggregate.state_as_json().items())
        console.print(make_table(None, ("field", "value"), rows))


@contextlib.contextmanager
def _no_progress(_total: int) -> Iterator[Advance]:
    yield lambda _n: None


def _snapshot_to_use(
    store: EventStore, cls: type[Aggregate], aggregate_id: str, upto: int
) -> tuple[Snapshot | None, str | None]:
    snapshot = store.read_snapshot(cls.aggregate_type, aggregate_id)
    if snapshot is None:
        return None, None
    if snapshot.fingerprint != cls.schema_fingerprint():
        return None, _SKIPPED["fingerprint"]
    if snapshot.version > upto:
        return None, _SKIPPED["newer"]
    return snapshot, None


def replay_aggregate(
    store: EventStore,
    cls: type[Aggregate],
    aggregate_id: str,
    version: int | None,
    *,
    use_snapshot: bool,
    progress: Progress | None = None,
) -> Replayed:
    """Rebuild an aggregate as of ``version`` (latest if ``None``), timing it."""
    started = time.perf_counter()
    current = store.version_of(cls.aggregate_type, aggregate_id)
    if current == 0:
        raise AggregateNotFound(cls.aggregate_type, aggregate_id)
    if version is not None and version > current:
        raise AggregateNotFound(cls.aggregate_type, aggregate_id, version)
    upto = version or current
    snapshot, skipped = (
        _snapshot_to_use(store, cls, aggregate_id, upto) if use_snapshot else (None, None)
    )
    start = snapshot.version if snapshot is not None else 0
    if upto - start <= PAGE:
        return _loaded(
            store, cls, aggregate_id, version, use_snapshot=use_snapshot, started=started
        )
    aggregate = _from_snapshot(store, cls, aggregate_id, snapshot)
    with (progress or _no_progress)(upto - start) as advance:
        _replay_pages(store, aggregate, upto, advance)
    elapsed = (time.perf_counter() - started) * 1000
    return Replayed(aggregate, current, start or None, skipped, upto - start, elapsed)


def _loaded(
    store: EventStore,
    cls: type[Aggregate],
    aggregate_id: str,
    version: int | None,
    *,
    use_snapshot: bool,
    started: float,
) -> Replayed:
    fingerprint = cls.schema_fingerprint() if use_snapshot else ""
    loaded = store.load(cls.aggregate_type, aggregate_id, fingerprint=fingerprint, version=version)
    aggregate = Repository(store, cls).rebuild(aggregate_id, loaded)
    elapsed = (time.perf_counter() - started) * 1000
    skipped = _SKIPPED.get(loaded.snapshot_skipped, loaded.snapshot_skipped) or None
    snapshot_version = loaded.snapshot.version if loaded.snapshot is not None else None
    return Replayed(
        aggregate, loaded.current_version, snapshot_version, skipped, len(loaded.events), elapsed
    )


def _from_snapshot(
    store: EventStore, cls: type[Aggregate], aggregate_id: str, snapshot: Snapshot | None
) -> Aggregate:
    if snapshot is None:
        return cls(id=aggregate_id)
    try:
        return cls.from_state(aggregate_id, snapshot.version, snapshot.state)
    except AggregateError as exc:
        key = store.keys.snapshot(cls.aggregate_type, aggregate_id)
        raise SnapshotError(
            key, snapshot.version, f"s.{getattr(exc, 'field', '')}", str(exc)
        ) from exc


def _replay_pages(store: EventStore, aggregate: Aggregate, upto: int, advance: Advance) -> None:
    while aggregate.version < upto:
        page = store.read(
            aggregate.aggregate_type,
            aggregate.id,
            from_version=aggregate.version + 1,
            to_version=upto,
            limit=PAGE,
        )
        for recorded in page:
            _apply(store, aggregate, recorded)
        if not page:  # the stream ends before upto: a gap right after the last event
            _apply_missing(store, aggregate)
        advance(len(page))


def _apply(store: EventStore, aggregate: Aggregate, recorded: RecordedEvent) -> None:
    # the same checks as a repository load: a gap or an unknown projector is bad data
    stream = store.keys.stream(aggregate.aggregate_type, aggregate.id)
    if recorded.version != aggregate.version + 1:
        raise StoredDataError(
            stream, recorded.version, "id", f"expected version {aggregate.version + 1} (a gap)"
        )
    try:
        aggregate.apply(recorded.event)
    except MissingProjector as exc:
        raise StoredDataError(stream, recorded.version, "t", str(exc)) from exc


def _apply_missing(store: EventStore, aggregate: Aggregate) -> None:
    stream = store.keys.stream(aggregate.aggregate_type, aggregate.id)
    version = aggregate.version + 1
    raise StoredDataError(stream, version, "id", f"version {version} is missing (a gap)")
