"""scenario(): given/when/then tests of an aggregate, with readable failures."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregates import Aggregate, DomainEvent, invariant, projector
from eventstore import EventStoreError
from eventstore.testing import (
    Scenario,
    ScenarioError,
    ScenarioFailed,
    domain_events,
    scenario,
)
from tests.domain import Account, Deposited, InsufficientFunds, Opened, Tagged, Withdrawn


class ScPaid(DomainEvent):
    amount: int


class ScRefunded(DomainEvent):
    amount: int


class Till(Aggregate):
    """Planted bugs: ``refund`` triggers before checking, ``void`` changes state and raises."""

    total: int = 0

    def pay(self, amount: int) -> None:
        if amount <= 0:
            raise ValueError(f"amount must be positive, got {amount}")
        self.trigger(ScPaid(amount=amount))

    def refund(self, amount: int) -> None:
        self.trigger(ScRefunded(amount=amount))
        if self.total < 0:
            raise ValueError("refund larger than the total")

    def void(self) -> None:
        self.total = 0
        raise RuntimeError("cannot void")

    def skim(self, amount: int) -> None:
        self.trigger(ScRefunded(amount=amount))  # no rule: the invariant catches it

    @invariant
    def total_is_never_negative(self) -> bool:
        return self.total >= 0

    @projector(ScPaid)
    def _paid(self, event: ScPaid) -> None:
        self.total += event.amount

    @projector(ScRefunded)
    def _refunded(self, event: ScRefunded) -> None:
        self.total -= event.amount


def funded() -> Scenario[Account]:
    return scenario(Account).given(Opened(owner="ann"), Deposited(amount=5))


# -- the contract -----------------------------------------------------------------------------


def test_then_passes_with_exactly_the_new_events() -> None:
    result = funded().when(lambda acc: acc.withdraw(3)).then(Withdrawn(amount=3))
    assert result.events == (Withdrawn(amount=3),)
    assert result.aggregate.version == 3
    assert result.aggregate.pending_events == (Withdrawn(amount=3),)  # given is history


def test_raises_passes_for_a_domain_error_with_no_events() -> None:
    checked = funded().when(lambda acc: acc.withdraw(9)).raises(InsufficientFunds, match="< 9")
    assert isinstance(checked.error, InsufficientFunds)
    assert checked.events == ()
    scenario(Account).given(Opened(owner="ann")).when(lambda acc: acc.deposit(0)).raises(ValueError)


def test_then_state_checks_named_fields() -> None:
    funded().when(lambda acc: acc.withdraw(3)).then_state(balance=2, owner="ann")
    funded().then_state(balance=5)  # after given alone
    funded().when(lambda acc: acc.withdraw(9)).raises(InsufficientFunds).then_state(balance=5)


def test_then_with_no_events_expects_none() -> None:
    scenario(Account).when(lambda acc: None).then()
    with pytest.raises(ScenarioFailed, match=r"got:\n    1. Deposited\(amount=1\)"):
        scenario(Account).when(lambda acc: acc.deposit(1)).then()


def test_commands_chain_and_each_when_sees_only_its_own_events() -> None:
    (
        funded()
        .when(lambda acc: acc.deposit(4))
        .then(Deposited(amount=4))
        .when(lambda acc: acc.tag("a", "b"))
        .then(Tagged(tags=["a", "b"]))
        .then_state(balance=9, tags=["a", "b"])
    )


# -- failures say what differed -----------------------------------------------------------------


def test_then_reports_a_field_difference() -> None:
    with pytest.raises(ScenarioFailed) as failed:
        funded().when(lambda acc: acc.withdraw(3)).then(Withdrawn(amount=4))
    message = str(failed.value)
    assert message.startswith("Account: the command triggered other events:")
    assert "expected:\n    1. Withdrawn(amount=4)\n  got:\n    1. Withdrawn(amount=3)" in message
    assert "first difference at event 1, Withdrawn.amount: expected 4, got 3" in message
    assert isinstance(failed.value, AssertionError)


def test_then_reports_a_type_difference_and_missing_events() -> None:
    with pytest.raises(ScenarioFailed, match="expected a Withdrawn, got a Deposited"):
        funded().when(lambda acc: acc.deposit(3)).then(Withdrawn(amount=3))
    with pytest.raises(ScenarioFailed, match="expected 2 event"):
        funded().when(lambda acc: acc.deposit(3)).then(Deposited(amount=3), Deposited(amount=3))


def test_then_reports_that_the_command_raised() -> None:
    with pytest.raises(ScenarioFailed, match=r"but the command raised InsufficientFunds") as failed:
        funded().when(lambda acc: acc.withdraw(9)).then(Withdrawn(amount=9))
    assert isinstance(failed.value.__cause__, InsufficientFunds)


def test_raises_reports_a_command_that_did_not_raise() -> None:
    with pytest.raises(ScenarioFailed, match=r"expected InsufficientFunds, but the command "):
        funded().when(lambda acc: acc.withdraw(1)).raises(InsufficientFunds)


def test_raises_reports_another_error_or_message() -> None:
    with pytest.raises(ScenarioFailed, match="expected KeyError, got InsufficientFunds"):
        funded().when(lambda acc: acc.withdraw(9)).raises(KeyError)
    with pytest.raises(ScenarioFailed, match="does not match 'overdraft'"):
        funded().when(lambda acc: acc.withdraw(9)).raises(InsufficientFunds, match="overdraft")


def test_raises_catches_an_event_triggered_before_the_error() -> None:
    till = scenario(Till).given(ScPaid(amount=2)).when(lambda t: t.refund(5))
    with pytest.raises(ScenarioFailed) as failed:
        till.raises(ValueError)
    assert "raised ValueError('refund larger than the total') after triggering" in str(failed.value)
    assert "ScRefunded(amount=5): check the rules before triggering events" in str(failed.value)


def test_raises_catches_a_state_change_before_the_error() -> None:
    with pytest.raises(ScenarioFailed, match="changed the state: total: before 2, after 0"):
        scenario(Till).given(ScPaid(amount=2)).when(lambda t: t.void()).raises(RuntimeError)


def test_then_state_reports_every_wrong_field() -> None:
    with pytest.raises(ScenarioFailed) as failed:
        funded().when(lambda acc: acc.withdraw(3)).then_state(balance=3, owner="bob")
    assert "balance: expected 3, got 2" in str(failed.value)
    assert "owner: expected 'bob', got 'ann'" in str(failed.value)


def test_then_state_after_an_unexpected_error_says_so() -> None:
    with pytest.raises(ScenarioFailed, match="expect it with raises"):
        funded().when(lambda acc: acc.withdraw(9)).then_state(balance=5)


def test_a_broken_invariant_fails_the_command_that_broke_it() -> None:
    with pytest.raises(ScenarioFailed) as failed:
        scenario(Till).given(ScPaid(amount=2)).when(lambda t: t.skim(3))
    message = str(failed.value)
    assert "after the command, invariant total_is_never_negative does not hold" in message
    assert "(returned False); state: {'total': -1}" in message


def test_a_given_history_that_breaks_an_invariant_is_reported() -> None:
    with pytest.raises(ScenarioFailed, match="after the given history, invariant total_is"):
        scenario(Till).given(ScRefunded(amount=1))


# -- misuse is a ScenarioError naming the call ---------------------------------------------------


def test_misuse_is_a_scenario_error() -> None:
    with pytest.raises(ScenarioError, match=r"then\(\) before when\(\)"):
        funded().then(Withdrawn(amount=1))
    with pytest.raises(ScenarioError, match=r"raises\(\) before when\(\)"):
        funded().raises(ValueError)
    with pytest.raises(ScenarioError, match=r"given\(\) after when\(\)"):
        funded().when(lambda acc: None).given(Deposited(amount=1))
    with pytest.raises(ScenarioError, match=r"given\(\) argument 2 is 'x', not a DomainEvent"):
        scenario(Account).given(Opened(owner="a"), "x")  # type: ignore[arg-type]
    with pytest.raises(ScenarioError, match=r"then\(\) argument 1 is 3"):
        funded().when(lambda acc: None).then(3)  # type: ignore[arg-type]
    with pytest.raises(ScenarioError, match="expects an exception class"):
        funded().when(lambda acc: None).raises("ValueError")  # type: ignore[arg-type]
    with pytest.raises(ScenarioError, match="when\\(\\) expects a callable"):
        funded().when(5)  # type: ignore[arg-type]
    assert issubclass(ScenarioError, EventStoreError)


def test_an_unknown_state_field_lists_the_fields() -> None:
    with pytest.raises(ScenarioError, match=r"'balanse' is not a state field \(fields: owner, bal"):
        funded().then_state(balanse=5)


def test_an_event_the_aggregate_cannot_project_is_named() -> None:
    with pytest.raises(ScenarioError, match=r"given\(\) event 1: Account has no projector for"):
        scenario(Account).given(ScPaid(amount=1))


def test_scenario_needs_an_aggregate_class() -> None:
    with pytest.raises(ScenarioError, match="expects an Aggregate subclass"):
        scenario(int)  # type: ignore[type-var]


def test_scenario_takes_an_id() -> None:
    assert scenario(Account, id="acc-7").aggregate.id == "acc-7"


# -- a property, with the exported event strategy ------------------------------------------------


@given(st.lists(domain_events(Deposited, amount=st.integers(1, 10**6)), max_size=8))
def test_any_deposits_add_up(deposits: list[Deposited]) -> None:
    total = sum(event.amount for event in deposits)
    checked = scenario(Account).given(Opened(owner="ann"), *deposits)
    checked.then_state(balance=total)
    checked.when(lambda acc: acc.withdraw(total + 1)).raises(InsufficientFunds)
