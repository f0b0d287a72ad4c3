"""Readable comparisons of events and states, for the messages of failed checks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aggregates import DomainEvent

__all__ = ["describe_events", "events_diff", "same_event", "same_value", "state_differences"]

_MISSING = object()


def same_value(left: Any, right: Any) -> bool:
    """Equal, or both the same type with the same repr (so ``nan`` equals ``nan``)."""
    if left is right:
        return True
    try:
        equal = bool(left == right)
    except Exception:  # noqa: BLE001 - a value whose == raises is compared by repr
        equal = False
    return equal or (type(left) is type(right) and repr(left) == repr(right))


def same_event(left: DomainEvent, right: DomainEvent) -> bool:
    """Same event class and the same field values."""
    return type(left) is type(right) and same_value(left.model_dump(), right.model_dump())


def describe_events(events: Sequence[DomainEvent]) -> str:
    """``"none"`` or the events' reprs, comma separated."""
    return ", ".join(repr(event) for event in events) if events else "none"


def events_diff(expected: Sequence[DomainEvent], actual: Sequence[DomainEvent]) -> str | None:
    """``None`` if both lists hold the same events in order, else a readable diff."""
    if len(expected) == len(actual) and all(map(same_event, expected, actual)):
        return None
    lines = ["  expected:", *_numbered(expected), "  got:", *_numbered(actual)]
    lines.append(f"  {_first_difference(expected, actual)}")
    return "\n".join(lines)


def state_differences(
    left: Mapping[str, Any], right: Mapping[str, Any], left_name: str, right_name: str
) -> list[str]:
    """One line per field whose values differ: ``field: <left_name> 1, <right_name> 2``."""
    lines = []
    for name in sorted({*left, *right}):
        one, other = left.get(name, _MISSING), right.get(name, _MISSING)
        if not same_value(one, other):
            lines.append(f"{name}: {left_name} {_show(one)}, {right_name} {_show(other)}")
    return lines


def _numbered(events: Sequence[DomainEvent]) -> list[str]:
    if not events:
        return ["    (no events)"]
    return [f"    {n}. {event!r}" for n, event in enumerate(events, start=1)]


def _first_difference(expected: Sequence[DomainEvent], actual: Sequence[DomainEvent]) -> str:
    for n, (want, got) in enumerate(zip(expected, actual, strict=False), start=1):
        if type(want) is not type(got):
            return (
                f"first difference at event {n}: expected a {type(want).__name__}, "
                f"got a {type(got).__name__}"
            )
        if not same_event(want, got):
            fields = state_differences(want.model_dump(), got.model_dump(), "expected", "got")
            return f"first difference at event {n}, {type(want).__name__}." + "; ".join(fields)
    return f"expected {len(expected)} event(s), got {len(actual)}"


def _show(value: Any) -> str:
    return "(missing)" if value is _MISSING else repr(value)
