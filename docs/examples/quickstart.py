"""The quickstart from the README and docs/quickstart.md, run by the test suite.

The asyncio twin is async_quickstart.py (see docs/async.md).

Run it against any server: EVENTSTORE_URL=redis://127.0.0.1:6379/0 python quickstart.py
"""

import os

from aggregates import Aggregate, DomainEvent, projector
from eventstore import EventStore, Repository

URL = os.environ.get("EVENTSTORE_URL", "redis://127.0.0.1:6379/0")


class Deposited(DomainEvent):
    amount: int


class Account(Aggregate):
    balance: int = 0

    def deposit(self, amount: int) -> None:
        if amount <= 0:
            raise ValueError("amount must be positive")
        self.trigger(Deposited(amount=amount))  # projects it and queues it

    @projector(Deposited)
    def _deposited(self, event: Deposited) -> None:
        self.balance += event.amount


store = EventStore.from_url(URL, namespace="bank")
accounts = Repository(store, Account, snapshot_every=100)
account = Account()  # new id; Account(id="acc-1") for a chosen one
account.deposit(10)
accounts.save(account)  # one atomic append, expected version checked
assert accounts.get(account.id).balance == 10
print(f"account {account.id} has balance {accounts.get(account.id).balance}")
