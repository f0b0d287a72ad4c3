"""domain_events() and event_sequences(): the strategies users build their own properties on."""

from __future__ import annotations

import uuid
from typing import Annotated

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import Field

from aggregates import DomainEvent
from eventstore import EventStore, Repository
from eventstore.examples import bank
from eventstore.testing import (
    CheckSetupError,
    domain_events,
    event_sequences,
    scenario,
)
from tests import domain

FIXTURE_OK = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


class StConstrained(DomainEvent):
    quantity: Annotated[int, Field(gt=0, le=10)]
    code: str = Field(min_length=2, max_length=3)
    ratio: float
    label: str = Field(default="x", alias="displayLabel")


@given(domain_events(StConstrained))
def test_generated_events_are_valid_and_respect_constraints(event: StConstrained) -> None:
    assert 0 < event.quantity <= 10
    assert 2 <= len(event.code) <= 3
    assert event.ratio == event.ratio  # finite: never nan
    assert StConstrained.model_validate_json(event.model_dump_json(by_alias=True)) == event


@given(domain_events(domain.Deposited, amount=st.integers(7, 9)))
def test_a_field_strategy_replaces_the_annotation(event: domain.Deposited) -> None:
    assert 7 <= event.amount <= 9


def test_bad_arguments_are_named() -> None:
    with pytest.raises(CheckSetupError, match=r"^Deposited, parameter 'amnt': is not a field"):
        domain_events(domain.Deposited, amnt=st.integers())
    with pytest.raises(CheckSetupError, match="expects a DomainEvent class"):
        domain_events(int)  # type: ignore[type-var]


HISTORIES = event_sequences(
    bank.Account,
    initial="open",
    strategies={
        "open": {"owner": st.text(min_size=1)},
        "deposit": {"amount": st.integers(1, 50)},
        "withdraw": {"amount": st.integers(1, 50)},
    },
    max_commands=12,
)


@given(HISTORIES)
def test_histories_are_what_the_commands_can_produce(events: list[DomainEvent]) -> None:
    assert isinstance(events[0], bank.AccountOpened)
    assert not any(isinstance(e, bank.AccountOpened) for e in events[1:])  # open is refused
    balance = 0
    for event in events[1:]:
        assert isinstance(event, bank.MoneyDeposited | bank.MoneyWithdrawn)
        balance += event.amount if isinstance(event, bank.MoneyDeposited) else -event.amount
        assert balance >= 0  # a refused withdrawal left no event
    scenario(bank.Account).given(*events).then_state(balance=balance)


def test_histories_include_accepted_withdrawals() -> None:
    seen: list[int] = []

    @settings(max_examples=100, database=None, derandomize=True)
    @given(HISTORIES)
    def count(events: list[DomainEvent]) -> None:
        seen.append(sum(isinstance(e, bank.MoneyWithdrawn) for e in events))

    count()
    assert max(seen) >= 2


@FIXTURE_OK
@given(HISTORIES)
def test_any_history_round_trips_through_the_store(
    store: EventStore, events: list[DomainEvent]
) -> None:
    accounts = Repository(store, bank.Account, snapshot_every=4)
    account = bank.Account(id=f"acc-{uuid.uuid4().hex[:8]}")
    for event in events:
        account.trigger(event)
    accounts.save(account)
    loaded = accounts.get(account.id)
    assert (loaded.version, loaded.state()) == (account.version, account.state())
    assert [r.event for r in store.read("Account", account.id)] == events
