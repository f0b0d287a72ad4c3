"""``projections list | status | rebuild``: where each projection is, and rebuilding one.

What ``list`` and ``status`` show is read from Redis alone (checkpoints in the
``{ns:pN}:ckpt`` hashes, on a cluster each version's own checkpoint hash, the promoted
version in ``<ns>:projections``, the last failure in ``<ns>:error:<name>:v<version>``),
so they need no ``--app``. ``rebuild`` runs the
handlers, so it needs the projection's definition: the ``eventstore_projections(store)``
factory of an ``--app`` module.
"""

from __future__ import annotations

import time
from typing import Any, cast

import attrs
import click
from rich.console import Console

from eventstore._core.groups import log_lag, parse_first_position
from eventstore._core.projections import ProjectionFailure, parse_failure
from eventstore._redis.projection import Projection
from eventstore._redis.store import EventStore
from eventstore.cli._errors import CliError
from eventstore.cli._fetch import text
from eventstore.cli._options import json_option, pass_state
from eventstore.cli._output import make_table
from eventstore.cli._shapes import failure_json
from eventstore.cli._state import CliState

__all__ = ["COMMANDS", "ProjectionState", "projection_states"]

_FIELD_PREFIX = "projection:"
_POLL_SECONDS = 0.2
_BLOCK_MS = 100


@attrs.frozen
class ProjectionState:
    """One version of a projection: its checkpoint per partition against the log heads.

    ``firsts`` holds each log's first position (``head + 1`` when a trim emptied it): lag
    counts only entries still in the log, as ``wait_until_caught_up`` and group lag do,
    so a version started after a trim is not shown lagging by what it can never read.
    """

    name: str
    version: int
    active: bool
    positions: tuple[int, ...]
    heads: tuple[int, ...]
    firsts: tuple[int, ...]
    last_error: ProjectionFailure | None = None

    @property
    def partition_lags(self) -> tuple[int, ...]:
        """Per partition: events still in the log that this version has not applied."""
        return tuple(
            log_lag(head, pos, first)
            for pos, head, first in zip(self.positions, self.heads, self.firsts, strict=True)
        )

    @property
    def lag(self) -> int:
        """Events in the logs this version has not applied yet, over all partitions."""
        return sum(self.partition_lags)

    def as_json(self) -> dict[str, Any]:
        """The documented shape of one projection version."""
        return {
            "name": self.name,
            "version": self.version,
            "active": self.active,
            "lag": self.lag,
            "caught_up": self.lag == 0,
            "last_error": failure_json(self.last_error),
            "partitions": [
                {"partition": p, "position": pos, "head": head, "lag": lag}
                for p, (pos, head, lag) in enumerate(
                    zip(self.positions, self.heads, self.partition_lags, strict=True)
                )
            ],
        }


def _parse_field(field: str) -> tuple[str, int] | None:
    name, sep, version = field.removeprefix(_FIELD_PREFIX).rpartition(":v")
    if not field.startswith(_FIELD_PREFIX) or not sep or not version.isdigit():
        return None
    return name, int(version)


def projection_states(store: EventStore) -> list[ProjectionState]:
    """Every projection version with a checkpoint in the namespace, by name and version."""
    keys = store.keys
    # heads first: an entry appended after them is then never taken for a trimmed-away one
    heads = store.head().positions
    with store.client.pipeline(transaction=False) as pipe:
        for partition in range(store.partitions):
            pipe.hgetall(keys.checkpoints(partition))
        for partition in range(store.partitions):
            pipe.xrange(keys.log(partition), count=1)  # where a trim left the log
        pipe.hgetall(keys.projections)
        *replies, active_raw = pipe.execute()
    per_partition, first_entries = replies[: store.partitions], replies[store.partitions :]
    firsts = tuple(
        parse_first_position(cast(list[Any], first), head)
        for first, head in zip(first_entries, heads, strict=True)
    )
    active = {text(k): int(v) for k, v in cast(dict[bytes, bytes], active_raw).items()}
    found: dict[tuple[str, int], list[int]] = {}
    for partition, fields in enumerate(per_partition):
        for field, value in cast(dict[bytes, bytes], fields).items():
            parsed = _parse_field(text(field))
            if parsed is not None:
                found.setdefault(parsed, [0] * store.partitions)[partition] = int(value)
    if keys.clustered:
        found = _cluster_checkpoints(store, found)
    failures = _failures(store, sorted(found))
    return [
        ProjectionState(
            name, version, active.get(name) == version, tuple(pos), tuple(heads), firsts,
            failures[name, version],
        )
        for (name, version), pos in sorted(found.items())
    ]  # fmt: skip


def _cluster_checkpoints(
    store: EventStore, floors: dict[tuple[str, int], list[int]]
) -> dict[tuple[str, int], list[int]]:
    """On a cluster: each version's checkpoints from its own hash (the partitions' fields
    found it, but only hold floors of them), one round trip."""
    versions = sorted(floors)
    with store.client.pipeline(transaction=False) as pipe:
        for name, version in versions:
            pipe.hgetall(store.keys.projection_checkpoints(name, version))
        replies = pipe.execute()
    found = {}
    for (name, version), fields in zip(versions, replies, strict=True):
        stored = {text(k): int(v) for k, v in cast(dict[bytes, bytes], fields).items()}
        found[name, version] = [
            stored.get(f"p{partition}", floor)
            for partition, floor in enumerate(floors[name, version])
        ]
    return found


def _failures(
    store: EventStore, versions: list[tuple[str, int]]
) -> dict[tuple[str, int], ProjectionFailure | None]:
    """The last failure recorded for each projection version (one round trip)."""
    keys = [store.keys.projection_error(name, version) for name, version in versions]
    with store.client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hgetall(key)
        replies = pipe.execute()
    return {
        (name, version): parse_failure(key, name, version, cast(dict[bytes, bytes], fields))
        for (name, version), key, fields in zip(versions, keys, replies, strict=True)
    }


@click.group()
def projections() -> None:
    """Projections: position, lag, caught up; rebuild one blue/green."""


def _rows(states: list[ProjectionState]) -> list[tuple[Any, ...]]:
    return [
        (
            s.name, s.version, "yes" if s.active else "", list(s.positions), s.lag, s.lag == 0,
            "" if s.last_error is None else str(s.last_error),
        )
        for s in states
    ]  # fmt: skip


_COLUMNS = ("projection", "version", "active", "positions", "lag", "caught up", "last error")


@projections.command("list")
@json_option
@pass_state
def list_projections(state: CliState) -> None:
    """Every projection version with its position and lag."""
    found = projection_states(state.store())
    data = {"projections": [s.as_json() for s in found]}
    table = make_table(f"{len(found)} projection versions", _COLUMNS, _rows(found))
    state.out.result(data, lambda console: console.print(table))


@projections.command()
@click.argument("name")
@json_option
@pass_state
def status(state: CliState, name: str) -> None:
    """Position, lag and caught-up of every version of projection NAME."""
    store = state.store()
    mine = [s for s in projection_states(store) if s.name == name]
    if not mine:
        known = sorted({s.name for s in projection_states(store)})
        raise CliError(
            f"no projection {name!r} has a checkpoint in namespace {store.namespace!r} "
            f"(projections: {', '.join(known) or 'none'})",
            "run it once (or 'eventstore projections rebuild NAME') first",
        )
    active = next((s.version for s in mine if s.active), None)
    data = {"name": name, "active_version": active, "versions": [s.as_json() for s in mine]}
    table = make_table(f"projection {name}", _COLUMNS, _rows(mine))
    state.out.result(data, lambda console: console.print(table))


@attrs.frozen
class Rebuilt:
    """What ``rebuild`` did."""

    name: str
    version: int
    previous_version: int | None
    positions: tuple[int, ...]
    promoted: bool
    retired: int | None
    elapsed_ms: float

    def as_json(self) -> dict[str, Any]:
        """The documented ``rebuild --json`` shape."""
        return {
            "name": self.name, "version": self.version, "previous_version": self.previous_version,
            "positions": list(self.positions), "promoted": self.promoted,
            "retired_version": self.retired, "elapsed_ms": round(self.elapsed_ms, 1),
        }  # fmt: skip

    def render(self, console: Console) -> None:
        """What was built, and what serves reads now."""
        console.print(
            f"rebuilt projection {self.name} version {self.version} up to positions "
            f"{list(self.positions)} in {self.elapsed_ms / 1000:.2f} s"
        )
        if self.promoted:
            before = f" (was version {self.previous_version})" if self.previous_version else ""
            console.print(f"version {self.version} now serves reads{before}")
        if self.retired is not None:
            console.print(f"retired version {self.retired} (its keys and checkpoint deleted)")


def _prepare(store: EventStore, projection: Projection, version: int | None) -> int | None:
    """Pick the version to build, clear a half-done build of it; returns the serving one.

    Without ``version``: the definition's own version if it was never built (the code
    bumped it), else the next free version, so the serving one keeps serving meanwhile.
    """
    built = [s.version for s in projection_states(store) if s.name == projection.name]
    active = projection.active_version()
    # never promoted: the newest version with a checkpoint is the one applications read
    serving = active if active is not None else max(built, default=None)
    if version is None:
        version = projection.version if projection.version not in built else max(built) + 1
    if version == serving:
        raise CliError(
            f"projection {projection.name!r} version {version} serves reads",
            "rebuild under another --version, then it is switched to (blue/green)",
        )
    # the definition's handlers under the chosen version: its keys and checkpoint follow it
    projection.version = version
    if projection.checkpoint().total > 0 or projection.last_error() is not None:
        projection.retire()  # a build left half done and never promoted: start from zero
    return serving


def _follow(state: CliState, store: EventStore, projection: Projection) -> None:
    # stop() waits out the thread's current blocking read: keep it short for this run
    projection.block_ms = min(projection.block_ms, _BLOCK_MS)
    projection.start()
    try:
        target = store.head().total
        with state.out.progress(f"rebuilding {projection.name}", target or None) as advance:
            done = 0
            while not projection.wait_until_caught_up(_POLL_SECONDS):
                now = projection.checkpoint().total
                advance(now - done)
                done = now
            advance(projection.checkpoint().total - done)
    finally:
        projection.stop()


@projections.command()
@click.argument("name")
@click.option(
    "--version", type=click.IntRange(min=1), help="Build under this version (default: next)."
)
@click.option("--no-promote", is_flag=True, help="Build it, but leave the serving version.")
@click.option("--retire-old", is_flag=True, help="Delete the previous version once promoted.")
@json_option
@pass_state
def rebuild(
    state: CliState, name: str, *, version: int | None, no_promote: bool, retire_old: bool
) -> None:
    """Build projection NAME from zero under a new version, then switch reads to it."""
    store = state.store()
    found = state.domain().projections(store)
    projection = found.get(name)
    if projection is None:
        raise CliError(
            f"no projection {name!r} in --app {','.join(state.apps) or '(none)'} "
            f"(defined: {', '.join(sorted(found)) or 'none'})",
            "pass --app with a module defining eventstore_projections(store)",
        )
    started = time.perf_counter()
    previous = _prepare(store, projection, version)
    _follow(state, store, projection)
    retired = _promote(projection, previous, promote=not no_promote, retire=retire_old)
    rebuilt = Rebuilt(
        name, projection.version, previous, projection.checkpoint().positions, not no_promote,
        retired, (time.perf_counter() - started) * 1000,
    )  # fmt: skip
    state.out.result(rebuilt.as_json(), rebuilt.render)


def _promote(
    projection: Projection, previous: int | None, *, promote: bool, retire: bool
) -> int | None:
    if not promote:
        return None
    projection.promote()
    if not retire or previous is None or previous == projection.version:
        return None
    Projection(projection.store, projection.name, version=previous).retire()
    return previous


COMMANDS: list[click.Command] = [projections]
