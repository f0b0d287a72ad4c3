"""The public faces: each package exports exactly its ``__all__``, and the contract holds.

The contract names are those DESIGN.md promises to users ("What users write"); checks
from outside this test suite use them, so they must exist with these call shapes.
"""

from __future__ import annotations

import inspect
import types

import pytest

import aggregates
import eventstore
import eventstore.testing
from aggregates import Aggregate, DomainEvent, projector
from eventstore import ConcurrencyError, EventStore, Repository


@pytest.mark.parametrize(
    "package", [aggregates, eventstore, eventstore.testing], ids=lambda p: p.__name__
)
def test_public_names_are_exactly_all(package: types.ModuleType) -> None:
    public = {
        name
        for name in dir(package)
        if not name.startswith("_") and not isinstance(getattr(package, name), types.ModuleType)
    }
    assert set(package.__all__) == public
    assert len(package.__all__) == len(set(package.__all__))


@pytest.mark.parametrize(
    "package", [aggregates, eventstore, eventstore.testing], ids=lambda p: p.__name__
)
def test_every_exported_name_is_documented(package: types.ModuleType) -> None:
    for name in package.__all__:
        member = getattr(package, name)
        if inspect.isclass(member) or inspect.isfunction(member):
            assert inspect.getdoc(member), f"{package.__name__}.{name} has no docstring"


def _parameters(fn: object) -> list[str]:
    return list(inspect.signature(fn).parameters)  # type: ignore[arg-type]


def test_the_design_contract_names_exist() -> None:
    assert {"Aggregate", "DomainEvent", "projector"} <= set(aggregates.__all__)
    assert {"EventStore", "Repository", "ConcurrencyError"} <= set(eventstore.__all__)
    assert issubclass(ConcurrencyError, eventstore.EventStoreError)
    assert callable(projector)
    assert issubclass(DomainEvent, object)

    assert _parameters(EventStore.from_url)[:3] == ["url", "namespace", "partitions"]
    assert _parameters(EventStore.embedded)[:1] == ["path"]
    assert _parameters(Repository.__init__)[:4] == [
        "self",
        "store",
        "aggregate_class",
        "snapshot_every",
    ]
    assert _parameters(Repository.save)[:2] == ["self", "aggregate"]
    get = inspect.signature(Repository.get)
    assert list(get.parameters)[:3] == ["self", "id", "version"]
    assert get.parameters["version"].default is None

    account = Aggregate(id="x")
    assert (account.id, account.version) == ("x", 0)
    assert callable(account.trigger)
    assert inspect.signature(Aggregate.__init__).parameters["id"].default is None


def test_the_domain_testing_contract_names_exist() -> None:
    from eventstore.testing import check_aggregate, scenario

    assert {"invariant", "check_invariants"} <= set(aggregates.__all__)
    assert {"scenario", "check_aggregate", "domain_events", "event_sequences"} <= set(
        eventstore.testing.__all__
    )
    assert _parameters(scenario)[:1] == ["aggregate_class"]
    check = inspect.signature(check_aggregate)
    assert list(check.parameters)[:2] == ["aggregate_class", "store"]
    assert check.parameters["store"].default is None
    assert "max_examples" in check.parameters
    for step in ("given", "when", "then", "raises", "then_state"):
        assert callable(getattr(eventstore.testing.Scenario, step))
    assert _parameters(eventstore.testing.Scenario.raises)[1:3] == ["error", "match"]
