"""The laws an aggregate must keep after every command, as functions that say what broke.

Each returns ``None`` when the law holds, or one readable sentence naming what differed
(field, live value, other value, event). No storage: the Redis round trip is checked
separately, by saving and loading through a ``Repository``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence

from aggregates import Aggregate, AggregateError, DomainEvent, InvariantViolated, check_invariants
from eventstore._core.codec import decode_event, encode_event
from eventstore._core.errors import EventStoreError
from eventstore.testing._compare import same_event, state_differences

__all__ = [
    "StateSnapshot",
    "codec_problem",
    "invariant_problem",
    "replay_problem",
    "snapshot_of",
    "snapshot_problem",
    "snapshot_tail_problem",
]

StateSnapshot = tuple[int, str]
"""A snapshot taken by the check: (version, state as JSON text)."""


def replay_problem(live: Aggregate, events: Sequence[DomainEvent]) -> str | None:
    """Folding ``events`` into a new aggregate must give the live version and state."""
    replayed = type(live)(id=live.id)
    for number, event in enumerate(events, start=1):
        try:
            replayed.apply(event)
        except Exception as exc:  # noqa: BLE001 - a projector failing on its history is a finding
            return f"replaying event {number} ({event!r}) raised {exc!r}"
    return _compare(live, replayed, "replayed from its events")


def snapshot_of(live: Aggregate) -> tuple[StateSnapshot | None, str | None]:
    """The live state as snapshot JSON, or why it cannot be one."""
    try:
        with warnings.catch_warnings():
            # pydantic only warns when a value does not match its annotation: that value
            # would not come back as it went in, so here it is an error
            warnings.simplefilter("error")
            state = live.state_as_json()
        text = json.dumps(state, allow_nan=False, sort_keys=True)
    except (AggregateError, ValueError, TypeError, Warning) as exc:
        return None, f"the state cannot be snapshotted: {exc}"
    return (live.version, text), None


def snapshot_problem(live: Aggregate) -> str | None:
    """The live state, snapshotted to JSON and restored, must equal the live state."""
    snapshot, problem = snapshot_of(live)
    if snapshot is None:
        return problem
    return _restored_problem(live, snapshot, (), "restored from a snapshot")


def snapshot_tail_problem(
    live: Aggregate, snapshot: StateSnapshot, tail: Sequence[DomainEvent]
) -> str | None:
    """An earlier snapshot plus the events after it must give the live state."""
    label = f"restored from the snapshot at version {snapshot[0]} + {len(tail)} later event(s)"
    return _restored_problem(live, snapshot, tail, label)


def codec_problem(event: DomainEvent, stream: str, version: int) -> str | None:
    """The event must come back from its stored form (JSON) as the same event."""
    try:
        encoded = encode_event(event)
        decoded = decode_event(
            stream, version, encoded.event_type, encoded.schema_version, encoded.data.encode()
        )
    except (EventStoreError, AggregateError, ValueError, TypeError) as exc:
        return f"event {version} ({event!r}) does not round-trip through the codec: {exc}"
    if not same_event(event, decoded):
        return (
            f"event {version} does not round-trip through the codec: {event!r} "
            f"comes back as {decoded!r} (stored as {encoded.event_type} {encoded.data})"
        )
    return None


def invariant_problem(live: Aggregate) -> str | None:
    """Every ``@invariant`` method of the aggregate must hold."""
    try:
        check_invariants(live)
    except InvariantViolated as exc:
        return f"invariant {exc.invariant} does not hold ({exc.reason}); state: {live.state()}"
    return None


def _restored_problem(
    live: Aggregate, snapshot: StateSnapshot, tail: Sequence[DomainEvent], label: str
) -> str | None:
    version, text = snapshot
    try:
        restored = type(live).from_state(live.id, version, json.loads(text))
    except AggregateError as exc:
        return f"the snapshot at version {version} cannot be restored: {exc}"
    for event in tail:
        try:
            restored.apply(event)
        except Exception as exc:  # noqa: BLE001 - a projector failing here is a finding
            return f"{label}: applying {event!r} raised {exc!r}"
    return _compare(live, restored, label)


def _compare(live: Aggregate, other: Aggregate, label: str) -> str | None:
    if live.version != other.version:
        return f"version: live {live.version}, {label} {other.version}"
    name = label.split(" ", maxsplit=1)[0]
    differences = state_differences(live.state(), other.state(), "live", name)
    if differences:
        return f"state {label} differs from the live state: " + "; ".join(differences)
    return None
