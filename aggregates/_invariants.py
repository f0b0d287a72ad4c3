"""Invariants: rules an aggregate's state must satisfy after every command.

An invariant is a method marked with ``@invariant`` that returns ``True`` (or ``None``)
when the rule holds and returns ``False`` or fails an ``assert`` when it does not.
Nothing runs them implicitly: ``check_invariants(aggregate)`` does, and the testing tools
of ``eventstore.testing`` call it after every command they run.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from aggregates._aggregate import Aggregate
from aggregates._errors import InvariantViolated

__all__ = ["check_invariants", "invariant", "invariant_names"]

F = TypeVar("F", bound=Callable[..., Any])

_MARK = "__aggregate_invariant__"
_NAMES: weakref.WeakKeyDictionary[type[Aggregate], tuple[str, ...]] = weakref.WeakKeyDictionary()


def invariant(method: F) -> F:
    """Mark a method as an invariant of its aggregate: a rule every state must satisfy.

    ::

        class Account(Aggregate):
            balance: int = 0

            @invariant
            def balance_is_never_negative(self) -> bool:
                return self.balance >= 0

    Subclasses inherit invariants; overriding the method under the same name replaces it.
    """
    if not callable(method) or isinstance(method, (classmethod, staticmethod, property)):
        raise TypeError(f"@invariant expects a method taking only self, got {method!r}")
    setattr(method, _MARK, True)
    return method


def invariant_names(cls: type[Aggregate]) -> tuple[str, ...]:
    """The names of the invariant methods of an aggregate class, in definition order."""
    names = _NAMES.get(cls)
    if names is None:
        found: dict[str, None] = {}
        for klass in reversed(cls.__mro__):
            for name, member in vars(klass).items():
                if getattr(member, _MARK, False):
                    found[name] = None
        # an override without the decorator is still the invariant (getattr resolves it)
        names = tuple(found)
        _NAMES[cls] = names
    return names


def check_invariants(aggregate: Aggregate) -> None:
    """Run every invariant of ``aggregate``; raise ``InvariantViolated`` for the first broken one.

    The error names the aggregate, its id and version, the invariant and why it failed.
    """
    for name in invariant_names(type(aggregate)):
        try:
            held = getattr(aggregate, name)()
        except Exception as exc:  # an assert or any error inside the rule means it broke
            raise _violated(aggregate, name, _reason(exc)) from exc
        if held is False:
            raise _violated(aggregate, name, "returned False")


def _reason(exc: Exception) -> str:
    if isinstance(exc, AssertionError):
        return f"assertion failed: {exc}" if str(exc) else "assertion failed"
    return f"raised {exc!r}"


def _violated(aggregate: Aggregate, name: str, reason: str) -> InvariantViolated:
    return InvariantViolated(
        aggregate.aggregate_type, aggregate.id, aggregate.version, name, reason
    )
