"""The Aggregate base class, its projector registry and its snapshot state."""

from __future__ import annotations

import copy
import hashlib
import os
import time
import typing
import uuid
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

from pydantic import TypeAdapter, ValidationError

from aggregates._errors import MissingProjector, StateError
from aggregates._events import DomainEvent

__all__ = ["Aggregate", "projector"]

E = TypeVar("E", bound=DomainEvent)
A = TypeVar("A", bound="Aggregate")
Projector = Callable[[Any, Any], None]

_PROJECTS = "__projects_event__"


def projector(event_type: type[E]) -> Callable[[Callable[[A, E], None]], Callable[[A, E], None]]:
    """Mark a method as the projector of ``event_type``: it folds the event into state.

    Projectors must only change state; rules and validation belong in the command
    methods that call ``trigger``. Subclasses inherit projectors and may override them
    (same method name, or a new method for the same event type).
    """
    if not (isinstance(event_type, type) and issubclass(event_type, DomainEvent)):
        raise TypeError(f"@projector expects a DomainEvent subclass, got {event_type!r}")

    def mark(fn: Callable[[A, E], None]) -> Callable[[A, E], None]:
        setattr(fn, _PROJECTS, event_type)
        return fn

    return mark


class Aggregate:
    """Base class of event-sourced aggregates.

    State is declared as annotated class attributes with defaults; commands check the
    rules and call ``trigger(event)``, which runs the event's projector and queues the
    event until a repository saves it::

        class Account(Aggregate):
            balance: int = 0

            def deposit(self, amount: int) -> None:
                self.trigger(Deposited(amount=amount))

            @projector(Deposited)
            def _deposited(self, event: Deposited) -> None:
                self.balance += event.amount

    ``version`` counts every event applied, pending ones included. ``aggregate_type``
    (the class name unless set) names the aggregate in storage; ``snapshot_schema`` can be
    bumped to invalidate old snapshots when projectors change meaning but fields do not.
    """

    aggregate_type: ClassVar[str] = "Aggregate"
    snapshot_schema: ClassVar[int] = 1
    _projectors: ClassVar[dict[type[DomainEvent], str]] = {}
    _projector_cache: ClassVar[dict[type[DomainEvent], Projector]] = {}  # event class -> method
    _state_fields: ClassVar[dict[str, Any]] = {}  # name -> default
    _state_annotations: ClassVar[dict[str, Any]] = {}  # name -> annotation as written
    _state_adapters: ClassVar[dict[str, TypeAdapter[Any]]] = {}
    _fingerprint: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "aggregate_type" not in cls.__dict__:
            cls.aggregate_type = cls.__name__
        cls._projectors = _collect_projectors(cls)
        cls._projector_cache = {}
        cls._state_annotations, cls._state_fields = _collect_state_fields(cls)
        cls._state_adapters = {}
        cls._fingerprint = ""

    def __init__(self, id: str | None = None) -> None:  # noqa: A002 - `id` is the contract
        if id is not None and (not isinstance(id, str) or not id):
            raise ValueError(f"{type(self).__name__} id must be a non-empty string, got {id!r}")
        self.id: str = id if id is not None else str(uuid.uuid4())
        self.version: int = 0
        self._pending: list[DomainEvent] = []
        self._pending_ids: list[str] = []
        self._pending_times: list[int] = []
        for name, default in type(self)._state_fields.items():
            setattr(self, name, copy.deepcopy(default))

    def __repr__(self) -> str:
        state = ", ".join(f"{k}={v!r}" for k, v in self.state().items())
        return f"{type(self).__name__}(id={self.id!r}, version={self.version}, {state})"

    # -- events ---------------------------------------------------------------------------

    def trigger(self, event: DomainEvent) -> None:
        """Apply ``event`` to the state and queue it to be saved."""
        self.apply(event)
        self._pending.append(event)
        # ids and times are fixed when the event happens, so re-saving after a lost reply
        # sends the same ids and the store can recognise the batch (idempotent retry)
        self._pending_ids.append(_new_event_id())
        self._pending_times.append(time.time_ns() // 1_000_000)

    def apply(self, event: DomainEvent) -> None:
        """Run the projector of ``event`` and count it in ``version`` (no queueing)."""
        method = self._projector_for(type(event))
        method(self, event)
        self.version += 1

    @property
    def pending_events(self) -> tuple[DomainEvent, ...]:
        """Events triggered since the last save, oldest first."""
        return tuple(self._pending)

    @property
    def pending_event_ids(self) -> tuple[str, ...]:
        """The ids given to the pending events when they were triggered."""
        return tuple(self._pending_ids)

    @property
    def pending_event_times(self) -> tuple[int, ...]:
        """When each pending event was triggered (Unix time in milliseconds)."""
        return tuple(self._pending_times)

    @property
    def committed_version(self) -> int:
        """The version the store holds: ``version`` minus the pending events."""
        return self.version - len(self._pending)

    def mark_committed(self) -> None:
        """Forget the pending events; called by the repository after a successful save."""
        self._pending.clear()
        self._pending_ids.clear()
        self._pending_times.clear()

    @classmethod
    def handles(cls, event_type: type[DomainEvent]) -> bool:
        """Whether this aggregate has a projector for ``event_type``."""
        return any(t in cls._projectors for t in event_type.__mro__ if isinstance(t, type))

    @classmethod
    def _projector_for(cls, event_type: type[DomainEvent]) -> Projector:
        method = cls._projector_cache.get(event_type)
        if method is not None:
            return method
        for candidate in event_type.__mro__:
            name = cls._projectors.get(candidate)
            if name is not None:
                found: Projector = getattr(cls, name)
                cls._projector_cache[event_type] = found
                return found
        raise MissingProjector(cls.aggregate_type, event_type.event_type)

    # -- snapshot state -------------------------------------------------------------------

    @classmethod
    def state_fields(cls) -> Mapping[str, Any]:
        """The declared state attributes and their annotations."""
        return dict(cls._state_annotations)

    def state(self) -> dict[str, Any]:
        """The current state, attribute by attribute (live values, not copies)."""
        return {name: getattr(self, name) for name in type(self)._state_fields}

    def state_as_json(self) -> dict[str, Any]:
        """The state as JSON-compatible data, for snapshots (never pickle)."""
        out: dict[str, Any] = {}
        for name in type(self)._state_fields:
            try:
                out[name] = self._adapter(name).dump_python(getattr(self, name), mode="json")
            except Exception as exc:
                raise StateError(self.aggregate_type, name, f"cannot serialize: {exc}") from exc
        return out

    @classmethod
    def from_state(cls: type[A], id: str, version: int, state: Mapping[str, Any]) -> A:  # noqa: A002
        """Rebuild an aggregate from snapshot state; every declared field must be present."""
        aggregate = cls(id=id)
        missing = set(cls._state_fields) - set(state)
        if missing:
            raise StateError(cls.aggregate_type, sorted(missing)[0], "missing from snapshot state")
        for name in cls._state_fields:
            try:
                value = cls._adapter(name).validate_python(state[name])
            except ValidationError as exc:
                raise StateError(
                    cls.aggregate_type, name, f"invalid snapshot value: {exc}"
                ) from exc
            setattr(aggregate, name, value)
        aggregate.version = version
        return aggregate

    @classmethod
    def schema_fingerprint(cls) -> str:
        """A hash of the state's shape: changes when a field, its type or snapshot_schema does."""
        if not cls._fingerprint:
            parts = [cls.aggregate_type, str(cls.snapshot_schema)]
            fields = sorted(cls._state_annotations.items())
            parts += [f"{name}:{_type_name(tp)}" for name, tp in fields]
            cls._fingerprint = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
        return cls._fingerprint

    @classmethod
    def _adapter(cls, name: str) -> TypeAdapter[Any]:
        adapter = cls._state_adapters.get(name)
        if adapter is None:
            adapter = TypeAdapter(_resolved_hints(cls)[name])
            cls._state_adapters[name] = adapter
        return adapter


def _new_event_id() -> str:
    """A random (version 4) UUID as text, like ``str(uuid.uuid4())`` at half the cost."""
    h = os.urandom(16).hex()
    variant = "89ab"[int(h[16], 16) & 3]  # the two top bits of the variant nibble are 10
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"


def _collect_projectors(cls: type[Aggregate]) -> dict[type[DomainEvent], str]:
    table: dict[type[DomainEvent], str] = {}
    for klass in reversed(cls.__mro__):
        for name, member in vars(klass).items():
            event_type = getattr(member, _PROJECTS, None)
            if event_type is not None:
                # a subclass overriding the method under the same name drops the old mapping
                table = {t: n for t, n in table.items() if n != name}
                table[event_type] = name
    # an override without the decorator keeps the mapping (getattr resolves the override)
    return table


def _collect_state_fields(cls: type[Aggregate]) -> tuple[dict[str, Any], dict[str, Any]]:
    annotations: dict[str, Any] = {}
    defaults: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if klass is object or klass is Aggregate:
            continue
        for name, annotation in vars(klass).get("__annotations__", {}).items():
            if name.startswith("_") or _is_classvar(annotation):
                continue
            if name not in vars(klass):
                raise TypeError(f"{cls.__qualname__}.{name}: state attributes need a default value")
            annotations[name] = annotation
            defaults[name] = vars(klass)[name]
    return annotations, defaults


def _is_classvar(annotation: Any) -> bool:
    if isinstance(annotation, str):
        return annotation.startswith(("ClassVar", "typing.ClassVar"))
    return typing.get_origin(annotation) is ClassVar or annotation is ClassVar


def _resolved_hints(cls: type[Aggregate]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except NameError as exc:
        raise StateError(
            cls.aggregate_type, str(exc.name), "annotation cannot be resolved"
        ) from exc


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, str):
        return annotation
    if typing.get_origin(annotation) is not None:
        return repr(annotation)  # list[str]: __qualname__ would say only "list"
    return getattr(annotation, "__qualname__", None) or repr(annotation)
