"""Errors raised by domain code. The root is ``AggregateError``::

AggregateError
├── MissingProjector      trigger()/apply of an event type the aggregate cannot project
├── DuplicateEventType    two event classes claim one stored type name
├── UpcastError           a stored payload cannot be brought to the current schema
├── StateError            aggregate state cannot be (de)serialized for a snapshot
└── InvariantViolated     a method marked @invariant failed (also an AssertionError)
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AggregateError",
    "DuplicateEventType",
    "InvariantViolated",
    "MissingProjector",
    "StateError",
    "UpcastError",
]


class AggregateError(Exception):
    """Root of the errors raised by the ``aggregates`` package."""


class MissingProjector(AggregateError, TypeError):
    """An aggregate was asked to apply an event type it has no projector for."""

    def __init__(self, aggregate_type: str, event_type: str) -> None:
        self.aggregate_type = aggregate_type
        self.event_type = event_type
        super().__init__(
            f"{aggregate_type} has no projector for event {event_type}: "
            f"add a method decorated with @projector({event_type})"
        )


class DuplicateEventType(AggregateError, TypeError):
    """Two different event classes claim the same stored type name."""

    def __init__(self, event_type: str, first: type[Any], second: type[Any]) -> None:
        self.event_type = event_type
        super().__init__(
            f"event type name {event_type!r} is used by {first.__module__}.{first.__qualname__} "
            f"and {second.__module__}.{second.__qualname__}: set event_type on one of them"
        )


class UpcastError(AggregateError, ValueError):
    """A stored event payload cannot be upcast to the current schema version."""

    def __init__(self, event_type: str, from_version: int, to_version: int, reason: str) -> None:
        self.event_type = event_type
        self.from_version = from_version
        self.to_version = to_version
        super().__init__(
            f"cannot upcast {event_type} from schema version {from_version} "
            f"to {to_version}: {reason}"
        )


class StateError(AggregateError, ValueError):
    """Aggregate state could not be serialized or restored."""

    def __init__(self, aggregate_type: str, field: str, reason: str) -> None:
        self.aggregate_type = aggregate_type
        self.field = field
        super().__init__(f"{aggregate_type}.{field}: {reason}")


class InvariantViolated(AggregateError, AssertionError):
    """An aggregate's state broke one of its ``@invariant`` rules."""

    def __init__(
        self, aggregate_type: str, aggregate_id: str, version: int, invariant: str, reason: str
    ) -> None:
        self.aggregate_type = aggregate_type
        self.aggregate_id = aggregate_id
        self.version = version
        self.invariant = invariant
        self.reason = reason
        super().__init__(
            f"{aggregate_type} {aggregate_id} at version {version}: "
            f"invariant {invariant} does not hold ({reason})"
        )
