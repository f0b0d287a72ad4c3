"""check_aggregate(): generated command sequences find planted bugs, pass correct aggregates.

Every planted-bug test runs derandomized (a fixed sequence of examples) with enough
examples to find the bug, so it never depends on luck; the report must be the shrunk,
minimal sequence and must say what differed.
"""

from __future__ import annotations

from typing import Any, Protocol

import pytest
from hypothesis import settings
from hypothesis import strategies as st

from aggregates import Aggregate, DomainEvent, invariant, projector
from eventstore import EventStore, EventStoreError
from eventstore.examples import bank
from eventstore.testing import AggregateCheckFailed, CheckSetupError, check_aggregate
from tests import domain

FIXED = settings(derandomize=True, database=None)


class CkDeposited(DomainEvent):
    amount: int


class CkWithdrawn(DomainEvent):
    amount: int


class CkNoted(DomainEvent):
    note: Any


class CkPlaced(DomainEvent):
    customer: str


class CkLineAdded(DomainEvent):
    pass


def failure(cls: type[Aggregate], **options: Any) -> AggregateCheckFailed:
    with pytest.raises(AggregateCheckFailed) as failed:
        check_aggregate(cls, settings=FIXED, **options)
    return failed.value


# -- planted bugs ---------------------------------------------------------------------------


class Leaky(Aggregate):
    """Bug: ``deposit`` counts deposits outside the projector (replay differs from live)."""

    balance: int = 0
    deposits: int = 0

    def deposit(self, amount: int) -> None:
        if amount <= 0:
            raise ValueError("amount must be positive")
        self.trigger(CkDeposited(amount=amount))
        self.deposits += 1

    @projector(CkDeposited)
    def _deposited(self, event: CkDeposited) -> None:
        self.balance += event.amount


def test_finds_state_changed_outside_a_projector() -> None:
    error = failure(Leaky, max_examples=50)
    assert error.problem == (
        "after deposit(amount=1) triggered CkDeposited(amount=1): state replayed from its "
        "events differs from the live state: deposits: live 1, replayed 0"
    )
    assert error.steps[0].startswith("Leaky(id='check-")
    assert error.steps[1:] == ("deposit(amount=1) -> CkDeposited(amount=1)",)
    assert "after this sequence of 2 step(s):" in str(error)
    assert "  2. deposit(amount=1) -> CkDeposited(amount=1)" in str(error)


class Hasty(Aggregate):
    """Bug: ``withdraw`` triggers its event, then checks the rule and raises."""

    balance: int = 0

    def deposit(self, amount: int) -> None:
        if amount <= 0:
            raise ValueError("amount must be positive")
        self.trigger(CkDeposited(amount=amount))

    def withdraw(self, amount: int) -> None:
        self.trigger(CkWithdrawn(amount=amount))
        if self.balance < 0:
            raise ValueError("overdrawn")

    @projector(CkDeposited)
    def _deposited(self, event: CkDeposited) -> None:
        self.balance += event.amount

    @projector(CkWithdrawn)
    def _withdrawn(self, event: CkWithdrawn) -> None:
        self.balance -= event.amount


def test_finds_a_command_that_triggers_then_raises() -> None:
    error = failure(Hasty, max_examples=50)
    assert error.problem == (
        "withdraw(amount=1) raised ValueError('overdrawn') after triggering "
        "CkWithdrawn(amount=1): a rejected command must trigger no event "
        "(check the rules before calling trigger)"
    )
    assert error.steps[1:] == (
        "withdraw(amount=1) -> CkWithdrawn(amount=1), then raised ValueError('overdrawn')",
    )


class Rash(Aggregate):
    """Bugs: ``reset`` changes state before refusing; ``sneak`` applies an event, then refuses."""

    total: int = 0

    def add(self, n: int) -> None:
        self.trigger(CkDeposited(amount=n))

    def reset(self) -> None:
        self.total = 0
        raise ValueError("resets are not allowed")

    def sneak(self) -> None:
        self.apply(CkDeposited(amount=1))
        raise ValueError("no sneaking")

    @projector(CkDeposited)
    def _added(self, event: CkDeposited) -> None:
        self.total += event.amount


def test_finds_a_rejected_command_that_changed_the_state() -> None:
    error = failure(Rash, max_examples=100, commands=["add", "reset"])
    assert error.problem.startswith("reset() raised ValueError('resets are not allowed') but ")
    assert "changed the state: total: before " in error.problem
    assert error.steps[-1] == "reset() -> rejected: ValueError('resets are not allowed')"
    error = failure(Rash, max_examples=50, commands=["sneak"])
    assert error.problem == (
        "sneak() raised ValueError('no sneaking') but changed the state: "
        "total: before 0, after 1; version: before 0, after 1"
    )


class Pairs(Aggregate):
    """Bug: a tuple in an untyped field comes back from a snapshot as a list."""

    last: Any = None

    def record(self, amount: int) -> None:
        self.trigger(CkDeposited(amount=amount))

    @projector(CkDeposited)
    def _recorded(self, event: CkDeposited) -> None:
        self.last = (event.amount, "cents")


def test_finds_state_that_does_not_survive_a_snapshot() -> None:
    error = failure(Pairs, max_examples=50)
    assert error.problem == (
        "after record(amount=0) triggered CkDeposited(amount=0): state restored from a "
        "snapshot differs from the live state: last: live (0, 'cents'), restored [0, 'cents']"
    )
    assert error.steps[1:] == ("record(amount=0) -> CkDeposited(amount=0)",)


class Mistyped(Aggregate):
    """Bug: a float in a field declared ``int`` (pydantic only warns when dumping it)."""

    average: int = 0

    def record(self, amount: int) -> None:
        self.trigger(CkDeposited(amount=amount))

    @projector(CkDeposited)
    def _recorded(self, event: CkDeposited) -> None:
        self.average = event.amount / 2  # type: ignore[assignment]


def test_finds_state_that_does_not_match_its_annotation() -> None:
    error = failure(Mistyped, max_examples=50)
    assert "the state cannot be snapshotted: Mistyped.average: cannot serialize" in error.problem
    assert error.steps[1:] == ("record(amount=0) -> CkDeposited(amount=0)",)


class Overdraft(Aggregate):
    """Bug: ``withdraw`` never checks the balance; the user's invariant catches it."""

    balance: int = 0

    def deposit(self, amount: int) -> None:
        if amount <= 0:
            raise ValueError("amount must be positive")
        self.trigger(CkDeposited(amount=amount))

    def withdraw(self, amount: int) -> None:
        if amount <= 0:
            raise ValueError("amount must be positive")
        self.trigger(CkWithdrawn(amount=amount))

    @invariant
    def balance_is_never_negative(self) -> bool:
        return self.balance >= 0

    @projector(CkDeposited)
    def _deposited(self, event: CkDeposited) -> None:
        self.balance += event.amount

    @projector(CkWithdrawn)
    def _withdrawn(self, event: CkWithdrawn) -> None:
        self.balance -= event.amount


def test_finds_a_broken_user_invariant() -> None:
    error = failure(Overdraft, max_examples=50)
    assert error.problem == (
        "after withdraw(amount=1) triggered CkWithdrawn(amount=1): invariant "
        "balance_is_never_negative does not hold (returned False); state: {'balance': -1}"
    )
    # shrinking nearly always drops a rejected step as well; allow for one left in
    assert error.steps[-1] == "withdraw(amount=1) -> CkWithdrawn(amount=1)"
    assert len(error.steps) <= 3


class Hidden(Aggregate):
    """Bug: a projector relies on an attribute the snapshot does not hold."""

    total: int = 0

    def add(self, n: int) -> None:
        self.trigger(CkDeposited(amount=n))

    @projector(CkDeposited)
    def _added(self, event: CkDeposited) -> None:
        self._seen = getattr(self, "_seen", 0) + 1
        self.total += event.amount * self._seen


def test_finds_a_snapshot_plus_tail_that_differs_from_live() -> None:
    error = failure(Hidden, max_examples=200)
    assert error.problem == (
        "after add(n=1) triggered CkDeposited(amount=1): state restored from the snapshot at "
        "version 1 + 1 later event(s) differs from the live state: total: live 2, restored 1"
    )
    assert error.steps[1:] == (
        "add(n=0) -> CkDeposited(amount=0)",
        "(snapshot taken at version 1)",
        "add(n=1) -> CkDeposited(amount=1)",
    )


class Noter(Aggregate):
    """Bug: an event holding a tuple in an untyped field is stored as a JSON list."""

    notes: int = 0

    def note(self, a: int) -> None:
        self.trigger(CkNoted(note=(a, a)))

    @projector(CkNoted)
    def _noted(self, event: CkNoted) -> None:
        self.notes += 1


def test_finds_an_event_that_does_not_survive_the_codec() -> None:
    error = failure(Noter, max_examples=50)
    assert error.problem == (
        "event 1 does not round-trip through the codec: CkNoted(note=(0, 0)) comes back as "
        'CkNoted(note=[0, 0]) (stored as CkNoted {"note":[0,0]})'
    )


class Buggy(Aggregate):
    """Bug: an assertion error inside a command is a bug, never a rejection."""

    count: int = 0

    def bump(self, by: int) -> None:
        if by == 3:
            raise AssertionError("three is not allowed")
        self.trigger(CkDeposited(amount=by))

    @projector(CkDeposited)
    def _bumped(self, event: CkDeposited) -> None:
        self.count += 1


def test_an_error_that_is_not_a_domain_error_is_reported() -> None:
    error = failure(Buggy, max_examples=100, strategies={"bump": {"by": st.integers(0, 5)}})
    assert error.problem == (
        "bump(by=3) raised AssertionError('three is not allowed'), which is not a domain error"
    )
    assert error.steps[-1] == "bump(by=3) -> raised AssertionError('three is not allowed')"
    strict = failure(
        bank.Account, max_examples=50, domain_errors=[ValueError, bank.InsufficientFunds]
    )
    assert "raised AccountNotOpen('account check-" in strict.problem
    assert strict.problem.endswith("is not open'), which is not a domain error")


# -- creating the aggregate ------------------------------------------------------------------


class Order(Aggregate):
    """Created by a class method; ``BadOrder`` plants a bug in it."""

    customer: str = ""
    lines: int = 0

    @classmethod
    def place(cls, id: str, customer: str) -> Order:  # noqa: A002 - the creator's contract
        if not customer:
            raise ValueError("a customer is required")
        order = cls(id=id)
        order.trigger(CkPlaced(customer=customer))
        return order

    def add_line(self) -> None:
        if not self.customer:
            raise ValueError("not placed")
        self.trigger(CkLineAdded())

    @projector(CkPlaced)
    def _placed(self, event: CkPlaced) -> None:
        self.customer = event.customer

    @projector(CkLineAdded)
    def _line_added(self, event: CkLineAdded) -> None:
        self.lines += 1


class BadOrder(Order):
    @classmethod
    def place(cls, id: str, customer: str) -> BadOrder:  # noqa: A002
        order = super().place(id, customer)
        order.lines = 1
        assert isinstance(order, BadOrder)
        return order


def test_class_methods_returning_the_class_create_it() -> None:
    check_aggregate(Order, settings=FIXED, max_examples=30)
    error = failure(BadOrder, max_examples=50)
    assert error.steps == ("BadOrder.place(customer='0') -> CkPlaced(customer='0')",)
    assert error.problem.endswith("lines: live 1, replayed 0")


def test_initial_runs_a_command_or_a_factory_first() -> None:
    def opened(owner: str) -> bank.Account:
        account = bank.Account()
        account.open(owner)
        account.balance = 1  # planted: outside any projector
        return account

    error = failure(bank.Account, max_examples=30, initial=opened)
    assert error.steps == ("opened(owner='') -> AccountOpened(owner='')",)
    error = failure(Leaky, max_examples=30, initial="deposit")
    assert error.steps[0].startswith("Leaky(id='check-")
    assert error.steps[0].endswith(").deposit(amount=1) -> CkDeposited(amount=1)")


class Refuser(Aggregate):
    value: int = 0

    @classmethod
    def make(cls, id: str) -> Refuser:  # noqa: A002
        raise ValueError("never")

    def set(self, value: int) -> None:
        raise ValueError("no")


def test_checks_that_never_run_a_command_fail() -> None:
    error = failure(Refuser, max_examples=20)
    assert error.problem == "creating the aggregate was always rejected (rejected: 1 x ValueError)"
    error = failure(Refuser, max_examples=20, initial=Refuser)
    assert error.problem.startswith("no generated command was ever accepted (rejected: ")
    assert "x ValueError): pass strategies=" in error.problem


# -- correct aggregates pass ------------------------------------------------------------------


def test_the_demo_domain_passes() -> None:
    check_aggregate(bank.Account, max_examples=100)
    check_aggregate(
        bank.Account,
        initial="open",
        strategies={
            "open": {"owner": st.text(min_size=1)},
            "deposit": {"amount": st.integers(1, 1000)},
            "withdraw": {"amount": st.integers(1, 1000)},
        },
    )


def test_the_test_domain_passes_with_variadic_commands() -> None:
    check_aggregate(domain.Account, max_examples=100)


def test_explicit_commands_and_domain_errors() -> None:
    check_aggregate(
        bank.Account,
        commands=["open", "deposit"],
        domain_errors=[ValueError, bank.AccountNotOpen],
        max_examples=50,
    )


# -- with a real store ----------------------------------------------------------------------


def test_the_demo_domain_passes_through_the_store(store: EventStore) -> None:
    check_aggregate(
        bank.Account,
        store,
        max_examples=60,
        initial="open",
        strategies={"deposit": {"amount": st.integers(1, 100)}},
        settings=FIXED,
    )
    versions: dict[str, int] = {}
    for recorded in store.read_all(aggregate_types=["Account"]):
        versions[recorded.aggregate_id] = recorded.version
    assert len(versions) > 20
    assert all(aid.startswith("check-") for aid in versions)
    snapshotted = [aid for aid, version in versions.items() if version >= 3]
    assert snapshotted
    for aid in snapshotted:
        snapshot = store.read_snapshot("Account", aid)
        assert snapshot is not None
        assert snapshot.version == versions[aid] // 3 * 3


def test_a_planted_bug_is_found_through_the_store(store: EventStore) -> None:
    error = failure(Overdraft, store=store, max_examples=50)
    assert error.steps[-1] == "withdraw(amount=1) -> CkWithdrawn(amount=1)"
    assert len(error.steps) <= 3
    assert "balance_is_never_negative does not hold" in error.problem


# -- commands that cannot be generated are named ------------------------------------------------


class Unhinted(Aggregate):
    name: str = ""

    def rename(self, name, shout: bool = False) -> None:  # type: ignore[no-untyped-def]
        self.trigger(CkPlaced(customer=name))

    @projector(CkPlaced)
    def _renamed(self, event: CkPlaced) -> None:
        self.name = event.customer


class Shape(Protocol):
    def area(self) -> float: ...


class Odd(Aggregate):
    def draw(self, shape: Shape) -> None:
        pass

    def later(self, thing: NotDefinedAnywhere) -> None:  # type: ignore[name-defined]  # noqa: F821
        pass


class Nothing(Aggregate):
    size: int = 0


def test_setup_errors_name_the_command_and_parameter() -> None:
    with pytest.raises(CheckSetupError) as failed:
        check_aggregate(Unhinted)
    assert str(failed.value) == (
        "Unhinted.rename, parameter 'name': has no type hint and no strategy: pass "
        "strategies={'rename': {'name': <strategy>}}"
    )
    assert (failed.value.subject, failed.value.parameter) == ("Unhinted.rename", "name")
    assert isinstance(failed.value, EventStoreError)
    check_aggregate(Unhinted, strategies={"rename": {"name": st.text()}}, max_examples=10)
    with pytest.raises(CheckSetupError, match=r"Odd.draw, parameter 'shape': hypothesis cannot"):
        check_aggregate(Odd, commands=["draw"])
    with pytest.raises(CheckSetupError, match=r"Odd.later, parameter 'thing': the type hint cann"):
        check_aggregate(Odd, commands=["later"])
    with pytest.raises(CheckSetupError, match=r"^Nothing: has no public command methods"):
        check_aggregate(Nothing)


def test_setup_errors_for_unknown_names() -> None:
    with pytest.raises(CheckSetupError, match=r"^Account.fly: is not a method of the aggregate"):
        check_aggregate(bank.Account, commands=["fly"])
    with pytest.raises(CheckSetupError, match=r"^Account.fly: strategies= names no command"):
        check_aggregate(bank.Account, strategies={"fly": {"height": st.integers()}})
    with pytest.raises(CheckSetupError, match=r"parameter 'amnt': strategies= names no such"):
        check_aggregate(bank.Account, strategies={"deposit": {"amnt": st.integers()}})
    with pytest.raises(CheckSetupError, match="expected an Aggregate subclass"):
        check_aggregate(int)  # type: ignore[type-var]
