"""Testing a bank account three ways: given/when/then, generated command sequences, properties.

In a project the ``test_*`` functions live in your test suite: pytest collects them, and
the plugin installed with redis-eventstore gives them the ``event_store`` fixture. Here
``main()`` calls them (with a store of its own) so the docs test can run the file.

Run: EVENTSTORE_URL=redis://127.0.0.1:6379/0 python docs/examples/domain_testing.py
"""

import os
import uuid
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from aggregates import Aggregate, DomainEvent, invariant, projector
from eventstore import EventStore
from eventstore.testing import (
    AggregateCheckFailed,
    ScenarioFailed,
    check_aggregate,
    domain_events,
    event_sequences,
    scenario,
)

URL = os.environ.get("EVENTSTORE_URL", "redis://127.0.0.1:6379/0")


# --- the domain under test -----------------------------------------------------------------
class Opened(DomainEvent):
    owner: str


class Deposited(DomainEvent):
    amount: int


class Withdrawn(DomainEvent):
    amount: int


class InsufficientFunds(ValueError):
    """A withdrawal larger than the balance: refused, nothing recorded."""


class Account(Aggregate):
    owner: str = ""
    balance: int = 0

    def open(self, owner: str) -> None:
        if self.owner or not owner:
            raise ValueError("an account is opened once, for a named owner")
        self.trigger(Opened(owner=owner))

    def deposit(self, amount: int) -> None:
        if not self.owner or amount <= 0:
            raise ValueError("deposit a positive amount into an open account")
        self.trigger(Deposited(amount=amount))

    def withdraw(self, amount: int) -> None:
        if not self.owner or amount <= 0:
            raise ValueError("withdraw a positive amount from an open account")
        if amount > self.balance:
            raise InsufficientFunds(f"balance {self.balance} is less than {amount}")
        self.trigger(Withdrawn(amount=amount))

    @invariant
    def balance_is_never_negative(self) -> bool:
        return self.balance >= 0

    @projector(Opened)
    def _opened(self, event: Opened) -> None:
        self.owner = event.owner

    @projector(Deposited)
    def _deposited(self, event: Deposited) -> None:
        self.balance += event.amount

    @projector(Withdrawn)
    def _withdrawn(self, event: Withdrawn) -> None:
        self.balance -= event.amount


# --- 1. given / when / then ----------------------------------------------------------------
def test_a_withdrawal_within_the_balance() -> None:
    (
        scenario(Account)
        .given(Opened(owner="ann"), Deposited(amount=5))
        .when(lambda account: account.withdraw(3))
        .then(Withdrawn(amount=3))
        .then_state(balance=2)
    )


def test_an_overdraft_is_refused() -> None:
    (
        scenario(Account)
        .given(Opened(owner="ann"))
        .when(lambda account: account.withdraw(9))
        .raises(InsufficientFunds, match="less than 9")
    )


def wrong_expectation() -> str:
    try:
        (
            scenario(Account)
            .given(Opened(owner="ann"), Deposited(amount=5))
            .when(lambda account: account.withdraw(3))
            .then(Withdrawn(amount=4))
        )
    except ScenarioFailed as failure:
        return str(failure)
    raise AssertionError("the wrong expectation passed")


# --- 2. generated command sequences ----------------------------------------------------------
AMOUNTS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "open": {"owner": st.sampled_from(["ann", "bob"])},
    "deposit": {"amount": st.integers(1, 1_000)},
    "withdraw": {"amount": st.integers(1, 1_000)},
}


def test_the_account_keeps_the_laws() -> None:
    check_aggregate(Account, initial="open", strategies=AMOUNTS, max_examples=200)


def test_the_account_keeps_the_laws_in_redis(event_store: EventStore) -> None:
    check_aggregate(Account, event_store, initial="open", strategies=AMOUNTS, max_examples=50)


class CarelessAccount(Account):
    def withdraw(self, amount: int) -> None:  # forgot the rule: the invariant notices
        self.trigger(Withdrawn(amount=amount))


def bug_report() -> str:
    try:
        check_aggregate(CarelessAccount, initial="open", strategies=AMOUNTS)
    except AggregateCheckFailed as failure:
        return str(failure)
    raise AssertionError("the planted bug was not found")


# --- 3. your own properties, on the exported strategies ----------------------------------------
def statement_total(events: list[DomainEvent]) -> int:
    """A read model someone wrote: the total of a printed statement."""
    total = 0
    for event in events:
        if isinstance(event, Deposited):
            total += event.amount
        elif isinstance(event, Withdrawn):
            total -= event.amount
    return total


@given(event_sequences(Account, initial="open", strategies=AMOUNTS))
def test_the_statement_agrees_with_the_account(events: list[DomainEvent]) -> None:
    account = scenario(Account).given(*events).aggregate
    assert statement_total(events) == account.balance


@given(st.lists(domain_events(Deposited, amount=st.integers(1, 100)), max_size=10))
def test_deposits_add_up(deposits: list[Deposited]) -> None:
    total = sum(deposit.amount for deposit in deposits)
    scenario(Account).given(Opened(owner="ann"), *deposits).then_state(balance=total)


def main() -> None:
    test_a_withdrawal_within_the_balance()
    test_an_overdraft_is_refused()
    print("given/when/then: 2 scenarios passed; a wrong expectation reads:")
    print(wrong_expectation())
    test_the_account_keeps_the_laws()
    with EventStore.from_url(URL, namespace=f"docs-{uuid.uuid4().hex[:6]}") as store:
        test_the_account_keeps_the_laws_in_redis(store)
    print("check_aggregate: the laws held, in memory and through Redis; a planted bug reads:")
    print(bug_report())
    test_the_statement_agrees_with_the_account()
    test_deposits_add_up()
    print("properties on generated histories and events held")


if __name__ == "__main__":
    main()
