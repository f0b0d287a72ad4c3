"""A small domain used across the tests: bank accounts."""

from __future__ import annotations

from typing import Any

from aggregates import Aggregate, DomainEvent, projector, upcaster


class Opened(DomainEvent):
    owner: str


class Deposited(DomainEvent):
    amount: int


class Withdrawn(DomainEvent):
    amount: int


class Tagged(DomainEvent):
    """Schema version 2: ``tags`` replaced a single ``tag`` string."""

    schema_version = 2
    tags: list[str]


@upcaster("Tagged", from_version=1)
def _tag_to_tags(data: dict[str, Any]) -> dict[str, Any]:
    return {"tags": [data["tag"]]}


class InsufficientFunds(Exception):
    pass


class Account(Aggregate):
    owner: str = ""
    balance: int = 0
    tags: list[str] = []  # noqa: RUF012 - state defaults are copied per instance

    def open(self, owner: str) -> None:
        self.trigger(Opened(owner=owner))

    def deposit(self, amount: int) -> None:
        if amount <= 0:
            raise ValueError("amount must be positive")
        self.trigger(Deposited(amount=amount))

    def withdraw(self, amount: int) -> None:
        if amount > self.balance:
            raise InsufficientFunds(f"balance {self.balance} < {amount}")
        self.trigger(Withdrawn(amount=amount))

    def tag(self, *tags: str) -> None:
        self.trigger(Tagged(tags=list(tags)))

    @projector(Opened)
    def _opened(self, event: Opened) -> None:
        self.owner = event.owner

    @projector(Deposited)
    def _deposited(self, event: Deposited) -> None:
        self.balance += event.amount

    @projector(Withdrawn)
    def _withdrawn(self, event: Withdrawn) -> None:
        self.balance -= event.amount

    @projector(Tagged)
    def _tagged(self, event: Tagged) -> None:
        self.tags = [*self.tags, *event.tags]
