"""The pure domain layer: events, projectors, state, fingerprints, upcasters (no Redis)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ValidationError

from aggregates import (
    Aggregate,
    DomainEvent,
    DuplicateEventType,
    MissingProjector,
    StateError,
    UpcastError,
    event_class,
    projector,
    upcast,
    upcaster,
)
from tests.domain import Account, Deposited, Opened, Tagged, Withdrawn


class AggNamed(DomainEvent):
    event_type = "agg.custom-name"
    value: int


class AggRenamedV3(DomainEvent):
    """Three schema versions: v1 ``name``, v2 ``full``, v3 ``first``/``last``."""

    schema_version = 3
    first: str
    last: str


@upcaster("AggRenamedV3", from_version=1)
def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    return {"full": data["name"]}


@upcaster(AggRenamedV3, from_version=2)
def _v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
    first, _, last = data["full"].partition(" ")
    return {"first": first, "last": last}


class AggBroken(DomainEvent):
    schema_version = 2
    value: int


@upcaster("AggBroken", from_version=1)
def _broken(data: dict[str, Any]) -> dict[str, Any]:
    return {"value": int(data["missing"])}


class AggSpecialDeposit(Deposited):
    """An event subclass: handled by the parent's projector unless overridden."""

    event_type = "AggSpecialDeposit"


class AggPlace(BaseModel):
    name: str
    at: datetime


class SavingsAccount(Account):
    """Inherits every projector; overrides one and adds one state field."""

    interest: float = 0.0
    places: ClassVar[int] = 3  # a ClassVar is not state

    @projector(Deposited)
    def _deposited(self, event: Deposited) -> None:
        self.balance += event.amount * 2

    @projector(AggSpecialDeposit)
    def _special(self, event: AggSpecialDeposit) -> None:
        self.balance += 1000


class RichState(Aggregate):
    when: datetime = datetime(2000, 1, 1, tzinfo=UTC)
    place: AggPlace | None = None
    counts: dict[str, int] = {}  # noqa: RUF012 - copied per instance
    ratio: float = 0.5
    _cache: int = 0  # private: not state


# -- events -------------------------------------------------------------------------------


def test_event_type_names_default_to_the_class_name_and_can_be_set() -> None:
    assert Deposited.event_type == "Deposited"
    assert AggNamed.event_type == "agg.custom-name"
    assert event_class("agg.custom-name") is AggNamed
    assert event_class("AggNamed") is None
    assert (Deposited.schema_version, AggRenamedV3.schema_version) == (1, 3)


def test_events_are_frozen_and_strict() -> None:
    event = Deposited(amount=3)
    with pytest.raises(ValidationError):
        event.amount = 4  # type: ignore[misc]
    with pytest.raises(ValidationError):
        Deposited(amount=3, other=1)  # type: ignore[call-arg]


def test_non_finite_floats_are_refused_because_json_cannot_hold_them() -> None:
    class AggFloaty(DomainEvent):
        x: float

    with pytest.raises(ValidationError):
        AggFloaty(x=math.inf)
    with pytest.raises(ValidationError):
        AggFloaty(x=math.nan)


def test_two_module_level_classes_with_one_type_name_clash() -> None:
    namespace: dict[str, Any] = {"DomainEvent": DomainEvent, "__name__": "tests.other_module"}
    source = "class Deposited(DomainEvent):\n    amount: int\n"
    with pytest.raises(DuplicateEventType) as info:
        exec(source, namespace)  # noqa: S102 - a second module defining the same name
    assert info.value.event_type == "Deposited"
    assert "tests.domain.Deposited" in str(info.value)
    assert event_class("Deposited") is Deposited


def test_redefining_the_same_class_replaces_it() -> None:
    namespace: dict[str, Any] = {"DomainEvent": DomainEvent, "__name__": AggNamed.__module__}
    exec(  # noqa: S102 - a module reloaded defines the same qualified name again
        "class AggNamed(DomainEvent):\n    event_type = 'agg.custom-name'\n    value: int\n",
        namespace,
    )
    try:
        assert event_class("agg.custom-name") is namespace["AggNamed"]
    finally:
        exec(  # noqa: S102 - put the original back for the other tests
            "from aggregates._events import _register\n_register(orig)\n",
            {"orig": AggNamed},
        )
    assert event_class("agg.custom-name") is AggNamed


def test_schema_version_must_be_a_positive_int() -> None:
    with pytest.raises(TypeError, match="schema_version"):

        class AggBadSchema(DomainEvent):
            schema_version = 0


# -- upcasters ----------------------------------------------------------------------------


def test_upcasters_chain_from_any_old_version() -> None:
    assert upcast("AggRenamedV3", {"name": "Ada Lovelace"}, 1, 3) == {
        "first": "Ada",
        "last": "Lovelace",
    }
    assert upcast("AggRenamedV3", {"full": "Alan Turing"}, 2, 3) == {
        "first": "Alan",
        "last": "Turing",
    }
    current = {"first": "a", "last": "b"}
    assert upcast("AggRenamedV3", current, 3, 3) == current


def test_upcast_errors_name_the_type_and_versions() -> None:
    with pytest.raises(UpcastError) as newer:
        upcast("AggRenamedV3", {}, 4, 3)
    assert (newer.value.event_type, newer.value.from_version, newer.value.to_version) == (
        "AggRenamedV3",
        4,
        3,
    )
    with pytest.raises(UpcastError, match="no upcaster from version 1"):
        upcast("Deposited", {"amount": 1}, 1, 2)


def test_an_upcaster_that_fails_raises_upcast_error() -> None:
    with pytest.raises(UpcastError) as info:
        upcast("AggBroken", {"value": 1}, 1, 2)
    assert (info.value.event_type, info.value.from_version) == ("AggBroken", 1)
    assert "missing" in str(info.value)


# -- projectors and versions --------------------------------------------------------------


def test_trigger_projects_queues_and_counts() -> None:
    account = Account(id="acc-1")
    account.open("ann")
    account.deposit(10)
    account.withdraw(3)
    assert (account.id, account.version, account.committed_version) == ("acc-1", 3, 0)
    assert (account.owner, account.balance) == ("ann", 7)
    assert account.pending_events == (
        Opened(owner="ann"),
        Deposited(amount=10),
        Withdrawn(amount=3),
    )
    assert len(set(account.pending_event_ids)) == 3
    assert all(t > 0 for t in account.pending_event_times)
    account.mark_committed()
    assert (account.version, account.committed_version) == (3, 3)
    assert not account.pending_events


def test_apply_projects_without_queueing() -> None:
    account = Account()
    account.apply(Deposited(amount=5))
    assert (account.balance, account.version, account.pending_events) == (5, 1, ())


def test_ids_are_new_uuids_unless_chosen_and_never_empty() -> None:
    assert Account().id != Account().id
    assert Account(id="x").id == "x"
    with pytest.raises(ValueError, match="non-empty"):
        Account(id="")


def test_a_failing_command_changes_nothing() -> None:
    account = Account()
    with pytest.raises(ValueError, match="positive"):
        account.deposit(0)
    assert (account.version, account.pending_events, account.balance) == (0, (), 0)


def test_projectors_are_inherited_and_overridden() -> None:
    savings = SavingsAccount()
    savings.open("bo")  # inherited
    savings.deposit(10)  # overridden: doubles
    savings.trigger(AggSpecialDeposit(amount=1))  # its own projector, not the parent's
    assert (savings.owner, savings.balance) == ("bo", 1020)
    plain = Account()
    plain.deposit(10)
    plain.trigger(AggSpecialDeposit(amount=1))  # subclass event: the parent projector
    assert plain.balance == 11
    assert SavingsAccount.handles(Tagged)
    assert not Account.handles(AggNamed)


def test_an_override_without_the_decorator_still_projects_its_event() -> None:
    class Tripled(Account):
        def _deposited(self, event: Deposited) -> None:
            self.balance += event.amount * 3

    tripled = Tripled()
    tripled.deposit(2)
    assert tripled.balance == 6


def test_an_event_without_projector_is_a_clear_error() -> None:
    account = Account()
    with pytest.raises(MissingProjector) as info:
        account.trigger(AggNamed(value=1))
    assert (info.value.aggregate_type, info.value.event_type) == ("Account", "agg.custom-name")
    assert "@projector" in str(info.value)
    assert (account.version, account.pending_events) == (0, ())


def test_projector_needs_an_event_class() -> None:
    with pytest.raises(TypeError, match="DomainEvent subclass"):
        projector(int)  # type: ignore[type-var]


def test_state_attributes_need_defaults() -> None:
    with pytest.raises(TypeError, match="need a default"):

        class NoDefault(Aggregate):
            balance: int


def test_default_state_is_copied_per_instance() -> None:
    first, second = Account(), Account()
    first.tag("x")
    first.tags.append("mutated")
    assert second.tags == []
    assert Account._state_fields["tags"] == []


# -- snapshot state -----------------------------------------------------------------------


def test_state_round_trips_as_json_without_pickle() -> None:
    rich = RichState(id="r1")
    rich.when = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    rich.place = AggPlace(name="Zürich 🏔", at=datetime(1999, 12, 31, tzinfo=UTC))
    rich.counts = {"ä": 1, "b": -2}
    rich.ratio = 1e-300
    rich._cache = 99
    state = rich.state_as_json()
    assert set(state) == {"when", "place", "counts", "ratio"}
    assert state["place"] == {"name": "Zürich 🏔", "at": "1999-12-31T00:00:00Z"}
    restored = RichState.from_state("r1", 7, state)
    assert restored.state() == rich.state()
    assert (restored.id, restored.version, restored._cache) == ("r1", 7, 0)


def test_unserializable_state_is_a_state_error() -> None:
    rich = RichState()
    rich.place = object()  # type: ignore[assignment]
    with pytest.raises(StateError) as info:
        rich.state_as_json()
    assert (info.value.aggregate_type, info.value.field) == ("RichState", "place")


def test_invalid_or_missing_snapshot_state_names_the_field() -> None:
    good = Account().state_as_json()
    with pytest.raises(StateError) as missing:
        Account.from_state("a", 1, {k: v for k, v in good.items() if k != "balance"})
    assert missing.value.field == "balance"
    with pytest.raises(StateError) as invalid:
        Account.from_state("a", 1, {**good, "balance": "lots"})
    assert invalid.value.field == "balance"


def _fingerprint_of(annotations: dict[str, Any], schema: int = 1) -> str:
    namespace = {
        "__annotations__": annotations,
        "aggregate_type": "AggFp",
        "snapshot_schema": schema,
        **dict.fromkeys(annotations),
    }
    cls: type[Aggregate] = type("AggFp", (Aggregate,), namespace)
    return cls.schema_fingerprint()


def test_fingerprint_changes_with_fields_types_and_snapshot_schema() -> None:
    base = _fingerprint_of({"balance": int, "owner": str})
    assert base == _fingerprint_of({"owner": str, "balance": int})  # order does not matter
    different = [
        _fingerprint_of({"balance": int}),  # a field removed
        _fingerprint_of({"balance": int, "owner": str, "extra": int}),  # a field added
        _fingerprint_of({"balance": float, "owner": str}),  # a type changed
        _fingerprint_of({"balance": int, "owner": str}, schema=2),  # schema bumped
        _fingerprint_of({"amount": int, "owner": str}),  # a field renamed
    ]
    assert base not in different
    assert len(set(different)) == len(different)


def test_fingerprint_sees_generic_type_parameters() -> None:
    assert _fingerprint_of({"tags": list[str]}) != _fingerprint_of({"tags": list[int]})
    assert _fingerprint_of({"m": dict[str, int]}) != _fingerprint_of({"m": dict[str, str]})
    assert _fingerprint_of({"x": int | None}) != _fingerprint_of({"x": str | None})


def test_fingerprint_differs_between_aggregate_classes() -> None:
    assert Account.schema_fingerprint() != SavingsAccount.schema_fingerprint()
    assert Account.schema_fingerprint() == Account.schema_fingerprint()
