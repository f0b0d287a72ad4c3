"""The demo's domain: bank accounts that are opened, credited and debited.

The business rule lives in the command method, never in a projector: a withdrawal
larger than the balance is refused before any event exists, so nothing is stored.

::

    account = Account(id="acc-alice")
    account.open("Alice")
    account.deposit(100)
    account.withdraw(30)      # balance 70
    account.withdraw(500)     # raises InsufficientFunds, no event
"""

from __future__ import annotations

from aggregates import Aggregate, DomainEvent, projector
from eventstore import EventStore, Projection, ProjectionContext, RecordedEvent

__all__ = [
    "REVIEW_ABOVE",
    "Account",
    "AccountNotOpen",
    "AccountOpened",
    "InsufficientFunds",
    "MoneyDeposited",
    "MoneyWithdrawn",
    "NeedsReview",
    "audit",
    "eventstore_projections",
]


class AccountOpened(DomainEvent):
    """An account was opened for ``owner``."""

    owner: str


class MoneyDeposited(DomainEvent):
    """``amount`` (in cents) was credited."""

    amount: int


class MoneyWithdrawn(DomainEvent):
    """``amount`` (in cents) was debited."""

    amount: int


class InsufficientFunds(Exception):
    """A withdrawal asked for more than the balance; nothing was recorded."""

    def __init__(self, account_id: str, balance: int, amount: int) -> None:
        self.account_id = account_id
        self.balance = balance
        self.amount = amount
        super().__init__(f"account {account_id}: balance {balance} is less than {amount}")


class AccountNotOpen(Exception):
    """A command was sent to an account that was never opened."""


class Account(Aggregate):
    """A bank account: an owner, a balance that never goes below zero, a count of moves."""

    owner: str = ""
    balance: int = 0
    transactions: int = 0

    def open(self, owner: str) -> None:
        """Open the account (once)."""
        if self.owner:
            raise ValueError(f"account {self.id} is already open for {self.owner}")
        self.trigger(AccountOpened(owner=owner))

    def deposit(self, amount: int) -> None:
        """Credit a positive ``amount``."""
        self._require_open()
        if amount <= 0:
            raise ValueError(f"deposit amount must be positive, got {amount}")
        self.trigger(MoneyDeposited(amount=amount))

    def withdraw(self, amount: int) -> None:
        """Debit ``amount``; the rule: never more than the balance."""
        self._require_open()
        if amount <= 0:
            raise ValueError(f"withdrawal amount must be positive, got {amount}")
        if amount > self.balance:
            raise InsufficientFunds(self.id, self.balance, amount)
        self.trigger(MoneyWithdrawn(amount=amount))

    def _require_open(self) -> None:
        if not self.owner:
            raise AccountNotOpen(f"account {self.id} is not open")

    @projector(AccountOpened)
    def _opened(self, event: AccountOpened) -> None:
        self.owner = event.owner

    @projector(MoneyDeposited)
    def _deposited(self, event: MoneyDeposited) -> None:
        self.balance += event.amount
        self.transactions += 1

    @projector(MoneyWithdrawn)
    def _withdrawn(self, event: MoneyWithdrawn) -> None:
        self.balance -= event.amount
        self.transactions += 1


# -- a read model and a consumer group over the accounts ------------------------------------


def eventstore_projections(store: EventStore) -> list[Projection]:
    """The bank's projections on ``store`` (the CLI's ``--app`` calls this by its name).

    ``balances``: a hash of account id -> balance, kept in Redis.
    """
    balances = Projection(store, "balances", version=1, aggregate_types=["Account"])

    @balances.on(AccountOpened)
    def _opened(event: AccountOpened, ctx: ProjectionContext) -> None:
        ctx.pipe.hset(ctx.key("balances"), ctx.record.aggregate_id, 0)

    @balances.on(MoneyDeposited)
    def _deposited(event: MoneyDeposited, ctx: ProjectionContext) -> None:
        ctx.pipe.hincrby(ctx.key("balances"), ctx.record.aggregate_id, event.amount)

    @balances.on(MoneyWithdrawn)
    def _withdrawn(event: MoneyWithdrawn, ctx: ProjectionContext) -> None:
        ctx.pipe.hincrby(ctx.key("balances"), ctx.record.aggregate_id, -event.amount)

    return [balances]


REVIEW_ABOVE = 30
"""Withdrawals above this need a review: the ``audit`` handler refuses them."""


class NeedsReview(Exception):
    """The audit step refused an event; after its retries it becomes a dead letter."""


def audit(recorded: RecordedEvent) -> None:
    """The handler of the demo's ``audit`` consumer group: large withdrawals fail."""
    event = recorded.event
    if isinstance(event, MoneyWithdrawn) and event.amount > REVIEW_ABOVE:
        raise NeedsReview(
            f"withdrawal of {event.amount} from {recorded.aggregate_id} is above "
            f"{REVIEW_ABOVE}: a person must review it"
        )
