"""@invariant and check_invariants (aggregates): rules every state must satisfy."""

from __future__ import annotations

import pytest

from aggregates import (
    Aggregate,
    AggregateError,
    DomainEvent,
    InvariantViolated,
    check_invariants,
    invariant,
    invariant_names,
    projector,
)


class InvSet(DomainEvent):
    low: int
    high: int


class Range(Aggregate):
    low: int = 0
    high: int = 0

    def set(self, low: int, high: int) -> None:
        self.trigger(InvSet(low=low, high=high))

    @invariant
    def low_is_at_most_high(self) -> bool:
        return self.low <= self.high

    @invariant
    def bounded(self) -> None:
        assert self.high < 100, f"high is {self.high}"

    @projector(InvSet)
    def _set(self, event: InvSet) -> None:
        self.low, self.high = event.low, event.high


class Positive(Range):
    @invariant
    def low_is_positive(self) -> None:
        if self.low < 0:
            raise ValueError("negative low")

    def bounded(self) -> None:  # an override keeps being the invariant
        assert self.high < 10, "tighter bound"


def test_invariants_are_found_in_order_and_inherited() -> None:
    assert invariant_names(Range) == ("low_is_at_most_high", "bounded")
    assert invariant_names(Positive) == ("low_is_at_most_high", "bounded", "low_is_positive")
    assert invariant_names(Aggregate) == ()


def test_holding_invariants_pass() -> None:
    rng = Range(id="r1")
    rng.set(1, 2)
    check_invariants(rng)


def test_an_invariant_returning_false_is_violated() -> None:
    rng = Range(id="r1")
    rng.set(3, 2)
    with pytest.raises(InvariantViolated) as failed:
        check_invariants(rng)
    error = failed.value
    assert (error.aggregate_type, error.aggregate_id, error.version) == ("Range", "r1", 1)
    assert error.invariant == "low_is_at_most_high"
    assert str(error) == (
        "Range r1 at version 1: invariant low_is_at_most_high does not hold (returned False)"
    )
    assert isinstance(error, AssertionError)
    assert isinstance(error, AggregateError)


def test_a_failed_assert_or_an_error_is_a_violation_with_its_reason() -> None:
    rng = Range(id="r1")
    rng.set(1, 200)
    with pytest.raises(InvariantViolated, match=r"bounded does not hold \(assertion failed: high"):
        check_invariants(rng)
    pos = Positive(id="p1")
    pos.set(-2, 5)
    with pytest.raises(InvariantViolated, match=r"raised ValueError\('negative low'\)") as failed:
        check_invariants(pos)
    assert isinstance(failed.value.__cause__, ValueError)
    pos.set(1, 50)
    with pytest.raises(InvariantViolated, match="tighter bound"):
        check_invariants(pos)


def test_invariant_rejects_what_is_not_a_method() -> None:
    with pytest.raises(TypeError, match="@invariant expects a method"):
        invariant(5)  # type: ignore[type-var]
    with pytest.raises(TypeError, match="@invariant expects a method"):
        invariant(property(lambda self: True))  # type: ignore[type-var]
