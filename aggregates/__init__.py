"""Pure domain code for event sourcing: events, aggregates, projectors, upcasters.

This package never imports Redis or ``eventstore``: domain code stays testable without
any storage, and the storage layer depends on it, never the other way round.
"""

from aggregates._aggregate import Aggregate, projector
from aggregates._errors import (
    AggregateError,
    DuplicateEventType,
    InvariantViolated,
    MissingProjector,
    StateError,
    UpcastError,
)
from aggregates._events import DomainEvent, Upcaster, event_class, event_classes, upcast, upcaster
from aggregates._invariants import check_invariants, invariant, invariant_names

__all__ = [
    "Aggregate",
    "DomainEvent",
    "projector",
    "upcaster",
    "upcast",
    "event_class",
    "event_classes",
    "Upcaster",
    "invariant",
    "invariant_names",
    "check_invariants",
    "AggregateError",
    "DuplicateEventType",
    "MissingProjector",
    "StateError",
    "UpcastError",
    "InvariantViolated",
]
