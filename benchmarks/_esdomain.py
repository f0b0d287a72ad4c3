"""The same account for the eventsourcing library (9.5), in its idioms.

``EsAccount`` is created by its ``Opened`` event (eventsourcing's ``@event`` on
``__init__``) and credited by ``Deposited``; the command checks the amount before the
event exists, the decorated method is the projector, exactly as ``BenchAccount`` does.
``Bank`` stores it without snapshots, ``SnapshottingBank`` with a snapshot every
``SNAPSHOT_EVERY`` versions (its ``snapshotting_intervals``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

__all__ = ["Bank", "EsAccount", "SnapshottingBank", "snapshotting_bank", "new_es_account"]


class EsAccount(Aggregate):
    """An owner, a balance and a count of deposits."""

    @event("Opened")
    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.balance = 0
        self.transactions = 0

    def deposit(self, amount: int) -> None:
        """Credit a positive ``amount``."""
        if amount <= 0:
            raise ValueError(f"deposit amount must be positive, got {amount}")
        self._deposited(amount)

    @event("Deposited")
    def _deposited(self, amount: int) -> None:
        self.balance += amount
        self.transactions += 1


class Bank(Application[Any]):
    """Accounts without snapshots; notification log sections of 1000 (our page size)."""

    log_section_size = 1000


class SnapshottingBank(Bank):
    """Accounts with automatic snapshots (interval set by ``snapshotting_bank``)."""

    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {EsAccount: 100}


def snapshotting_bank(every: int) -> type[SnapshottingBank]:
    """``SnapshottingBank`` with a snapshot every ``every`` versions."""
    if SnapshottingBank.snapshotting_intervals[EsAccount] == every:
        return SnapshottingBank
    return type(
        f"SnapshottingBank{every}",
        (SnapshottingBank,),
        {"snapshotting_intervals": {EsAccount: every}},
    )


def new_es_account(events: int) -> EsAccount:
    """A new account with ``events`` pending events: opened, then ``events - 1`` deposits."""
    account = EsAccount(owner="bench")
    for amount in range(1, events):
        account.deposit(amount)
    return account
