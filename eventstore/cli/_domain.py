"""Loading the user's domain code (``--app module[:attr]``): aggregates and projections.

Importing a module registers its event classes (``DomainEvent`` subclasses register
themselves by type name); its ``Aggregate`` subclasses are found by ``aggregate_type``.
Projections are bound to a store, so a module offers them through a factory: a function
``eventstore_projections(store)`` returning the ``Projection`` objects, which the CLI calls
with its own store. With ``:attr`` only that object is looked at: an aggregate class, a
projection factory, or an iterable of them.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs

from aggregates import Aggregate
from eventstore._redis.projection import Projection
from eventstore._redis.store import EventStore
from eventstore.cli._errors import CliError

__all__ = ["FACTORY_NAME", "Domain", "load_domain"]


@attrs.frozen
class Domain:
    """What ``--app`` made known: aggregate classes by type name, projections by name."""

    specs: tuple[str, ...] = ()
    aggregates: Mapping[str, type[Aggregate]] = attrs.field(factory=dict)
    projection_factories: tuple[Callable[[EventStore], Iterable[Projection]], ...] = ()

    def aggregate(self, aggregate_type: str) -> type[Aggregate]:
        """The class of ``aggregate_type``, or a ``CliError`` saying how to make it known."""
        found = self.aggregates.get(aggregate_type)
        if found is not None:
            return found
        if not self.specs:
            raise CliError(
                f"unknown aggregate type {aggregate_type!r} (no --app given)",
                "pass --app module (or set EVENTSTORE_APP) to import the code that defines it",
            )
        known = ", ".join(sorted(self.aggregates)) or "none"
        raise CliError(
            f"unknown aggregate type {aggregate_type!r}: --app {','.join(self.specs)} "
            f"defines {known}",
            "check the spelling or add the module that defines it to --app",
        )

    def projections(self, store: EventStore) -> dict[str, Projection]:
        """The projections of every factory, built on ``store``, by name."""
        found: dict[str, Projection] = {}
        for factory in self.projection_factories:
            for projection in factory(store):
                name = str(projection.name)
                if name in found:
                    raise CliError(
                        f"--app {','.join(self.specs)}: two projections are named {name!r}",
                        "give each projection its own name",
                    )
                found[name] = projection
        return found


FACTORY_NAME = "eventstore_projections"


def load_domain(specs: Sequence[str]) -> Domain:
    """Import every ``module[:attr]`` of ``specs`` and collect what they define."""
    # like `python -m`, the current directory is importable: `--app myapp.domain` just works
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    aggregates: dict[str, type[Aggregate]] = {}
    factories: list[Callable[[EventStore], Iterable[Projection]]] = []
    for spec in specs:
        for obj in _objects(spec):
            if isinstance(obj, type) and issubclass(obj, Aggregate) and obj is not Aggregate:
                _add_aggregate(aggregates, obj, spec)
            elif callable(obj) and getattr(obj, "__name__", "") == FACTORY_NAME:
                factories.append(obj)
    return Domain(tuple(specs), aggregates, tuple(factories))


def _add_aggregate(found: dict[str, type[Aggregate]], cls: type[Aggregate], spec: str) -> None:
    known = found.get(cls.aggregate_type)
    if known is not None and known is not cls:
        raise CliError(
            f"--app {spec}: aggregate type {cls.aggregate_type!r} is defined by "
            f"{known.__module__}.{known.__qualname__} and {cls.__module__}.{cls.__qualname__}",
            "set aggregate_type on one of them or point --app at one module",
        )
    found[cls.aggregate_type] = cls


def _objects(spec: str) -> Iterable[Any]:
    module_name, _, attr = spec.partition(":")
    module = _import(spec, module_name)
    if not attr:
        return list(vars(module).values())
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise CliError(
            f"--app {spec}: module {module_name!r} has no attribute {attr!r}",
            "use module:attr with an attribute the module defines",
        ) from None
    if isinstance(obj, type) or not isinstance(obj, Iterable):
        return [obj]
    return list(obj.values() if isinstance(obj, Mapping) else obj)


def _import(spec: str, module_name: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise CliError(
            f"--app {spec}: cannot import {module_name!r} ({exc})",
            "check the module path; the current directory is importable",
        ) from exc
