"""Domain events: frozen pydantic models with a stable type name and a schema version.

Every concrete ``DomainEvent`` subclass registers itself under its type name, so stored
events can be turned back into the right class. Upcasters registered per
``(type name, from_version)`` bring payloads written by an older shape of an event up to
the current one before validation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from aggregates._errors import DuplicateEventType, UpcastError

__all__ = [
    "DomainEvent",
    "Upcaster",
    "event_class",
    "event_classes",
    "upcast",
    "upcaster",
]

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

_EVENT_CLASSES: dict[str, type[DomainEvent]] = {}
_UPCASTERS: dict[tuple[str, int], Upcaster] = {}


class DomainEvent(BaseModel):
    """Base class of every domain event: an immutable, validated fact.

    The stored type name is the class name unless the class sets ``event_type``; the
    schema version starts at 1 and is bumped (with an upcaster from the old version)
    whenever the payload's shape changes::

        class Deposited(DomainEvent):
            amount: int

        class Renamed(DomainEvent):
            event_type = "CustomerRenamed"
            schema_version = 2
            first: str
            last: str
    """

    # JSON has no inf/nan: pydantic would store them as null, an event nobody can read back
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    event_type: ClassVar[str] = "DomainEvent"
    schema_version: ClassVar[int] = 1

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "event_type" not in cls.__dict__:
            cls.event_type = cls.__name__
        if not isinstance(cls.schema_version, int) or cls.schema_version < 1:
            raise TypeError(f"{cls.__qualname__}.schema_version must be an int >= 1")
        _register(cls)


def _register(cls: type[DomainEvent]) -> None:
    known = _EVENT_CLASSES.get(cls.event_type)
    # The same class defined again (a module reloaded, a test redefining it) replaces the
    # old one; two different classes claiming one stored name would decode wrongly.
    same_origin = known is not None and (known.__module__, known.__qualname__) == (
        cls.__module__,
        cls.__qualname__,
    )
    if known is not None and not same_origin and _is_live(known):
        raise DuplicateEventType(cls.event_type, known, cls)
    _EVENT_CLASSES[cls.event_type] = cls


def _is_live(cls: type[DomainEvent]) -> bool:
    # Classes defined inside functions (tests, notebooks) are only a clash while their
    # module-level name still points at them.
    return "<locals>" not in cls.__qualname__


def event_class(event_type: str) -> type[DomainEvent] | None:
    """The registered event class for a stored type name, or ``None``."""
    return _EVENT_CLASSES.get(event_type)


def event_classes() -> Iterator[type[DomainEvent]]:
    """Every registered event class."""
    return iter(list(_EVENT_CLASSES.values()))


def upcaster(
    event_type: str | type[DomainEvent], from_version: int
) -> Callable[[Upcaster], Upcaster]:
    """Register a function that turns a payload of ``from_version`` into ``from_version + 1``.

    ::

        @upcaster("CustomerRenamed", from_version=1)
        def split_name(data: dict[str, Any]) -> dict[str, Any]:
            first, _, last = data.pop("name").partition(" ")
            return {**data, "first": first, "last": last}
    """
    name = event_type if isinstance(event_type, str) else event_type.event_type

    def register(fn: Upcaster) -> Upcaster:
        _UPCASTERS[(name, from_version)] = fn
        return fn

    return register


def upcast(
    event_type: str, data: dict[str, Any], stored_version: int, current_version: int
) -> dict[str, Any]:
    """Run the upcaster chain from ``stored_version`` up to ``current_version``."""
    if stored_version > current_version:
        raise UpcastError(
            event_type, stored_version, current_version, "stored version is newer than the code"
        )
    for version in range(stored_version, current_version):
        fn = _UPCASTERS.get((event_type, version))
        if fn is None:
            raise UpcastError(
                event_type, version, current_version, f"no upcaster from version {version}"
            )
        try:
            data = fn(dict(data))
        except Exception as exc:  # a user upcaster failing on an old payload is bad data
            raise UpcastError(event_type, version, current_version, repr(exc)) from exc
        if not isinstance(data, dict):
            raise UpcastError(
                event_type, version, current_version, "upcaster did not return a dict"
            )
    return data
