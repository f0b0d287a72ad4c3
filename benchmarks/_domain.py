"""The benchmark's domain on our side: a bank account opened once and credited many times.

``benchmarks._esdomain`` defines the same account for the eventsourcing library: the
same two events with the same fields, the same check in the command, the same state
changes in the projectors. Event type names start with ``Bench`` so they never clash
with an application's own types.
"""

from __future__ import annotations

from aggregates import Aggregate, DomainEvent, projector

__all__ = ["AGGREGATE_TYPE", "BenchAccount", "BenchDeposited", "BenchOpened", "new_account"]


class BenchOpened(DomainEvent):
    """An account was opened for ``owner``."""

    owner: str


class BenchDeposited(DomainEvent):
    """``amount`` (in cents) was credited."""

    amount: int


class BenchAccount(Aggregate):
    """An owner, a balance and a count of deposits."""

    owner: str = ""
    balance: int = 0
    transactions: int = 0

    def open(self, owner: str) -> None:
        """Open the account (once)."""
        if self.owner:
            raise ValueError(f"account {self.id} is already open")
        self.trigger(BenchOpened(owner=owner))

    def deposit(self, amount: int) -> None:
        """Credit a positive ``amount``."""
        if amount <= 0:
            raise ValueError(f"deposit amount must be positive, got {amount}")
        self.trigger(BenchDeposited(amount=amount))

    @projector(BenchOpened)
    def _opened(self, event: BenchOpened) -> None:
        self.owner = event.owner

    @projector(BenchDeposited)
    def _deposited(self, event: BenchDeposited) -> None:
        self.balance += event.amount
        self.transactions += 1


AGGREGATE_TYPE = BenchAccount.aggregate_type


def new_account(events: int) -> BenchAccount:
    """A new account with ``events`` pending events: opened, then ``events - 1`` deposits."""
    account = BenchAccount()
    account.open("bench")
    for amount in range(1, events):
        account.deposit(amount)
    return account
