"""Type filters: ``event_types=`` and ``aggregate_types=`` take names or classes.

A filter is ``None`` (everything), one name or class, or a collection of them. An event
class stands for its stored name (``event_type``: the class name unless the class sets
one), an aggregate class for its ``aggregate_type``. Anything else is a ``TypeError``
naming the argument: a filter that silently matched nothing would hide the mistake.
"""

from __future__ import annotations

from collections.abc import Collection

from aggregates import Aggregate, DomainEvent

__all__ = ["TypeFilter", "type_name", "type_names"]

TypeFilter = Collection[str | type] | str | type | None
"""What ``event_types=`` / ``aggregate_types=`` accept."""


def type_name(value: object, argument: str) -> str:
    """The stored type name ``value`` stands for (a name, an event or aggregate class)."""
    if isinstance(value, str):
        return value
    if isinstance(value, type):
        if argument == "aggregate_types":
            if issubclass(value, Aggregate):
                return value.aggregate_type
            raise TypeError(f"{argument}: {value.__name__} is not an Aggregate class")
        if issubclass(value, DomainEvent):
            return value.event_type
        raise TypeError(f"{argument}: {value.__name__} is not a DomainEvent class")
    raise TypeError(f"{argument}: expected type names or classes, got {value!r}")


def type_names(values: object, argument: str) -> frozenset[str] | None:
    """The names in a type filter (``None``: no filter)."""
    if values is None:
        return None
    if isinstance(values, str | type):
        return frozenset((type_name(values, argument),))
    if not isinstance(values, Collection):
        raise TypeError(f"{argument}: expected type names or classes, got {values!r}")
    return frozenset(type_name(value, argument) for value in values)
