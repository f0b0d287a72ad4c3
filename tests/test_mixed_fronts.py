"""Sync and async stores on one namespace see each other's writes, conflicts and
checkpoints: they are two drivers of the same flows on the same keys."""

from __future__ import annotations

import asyncio

import pytest

from eventstore import (
    AsyncEventStore,
    AsyncRepository,
    ConcurrencyError,
    EventStore,
    Repository,
)
from tests.domain import Account, Deposited, Withdrawn


def test_writes_and_conflicts_cross_fronts(store: EventStore, redis_url: str) -> None:
    async def main() -> None:
        async with await AsyncEventStore.from_url(redis_url, namespace=store.namespace) as aio:
            store.append("Account", "a", [Deposited(amount=5)], 0)
            assert [e.event for e in await aio.read("Account", "a")] == [Deposited(amount=5)]
            with pytest.raises(ConcurrencyError) as info:
                await aio.append("Account", "a", [Deposited(amount=1)], 0)
            assert info.value.actual_version == 1
            await aio.append("Account", "a", [Withdrawn(amount=2)], 1)
            with pytest.raises(ConcurrencyError):
                store.append("Account", "a", [Deposited(amount=1)], 1)
            assert store.version_of("Account", "a") == await aio.version_of("Account", "a") == 2
            assert await aio.head() == store.head()

    asyncio.run(main())


def test_repositories_cross_fronts(store: EventStore, redis_url: str) -> None:
    async def main() -> None:
        async with await AsyncEventStore.from_url(redis_url, namespace=store.namespace) as aio:
            sync_accounts = Repository(store, Account, snapshot_every=2)
            async_accounts = AsyncRepository(aio, Account, snapshot_every=2)
            account = Account(id="acc")
            account.open("ann")
            account.deposit(10)
            sync_accounts.save(account)
            loaded = await async_accounts.get("acc")
            assert loaded.balance == 10
            loaded.withdraw(3)
            await async_accounts.save(loaded)
            stale = sync_accounts.get("acc", version=2)
            stale.deposit(1)
            with pytest.raises(ConcurrencyError):
                sync_accounts.save(stale)
            assert sync_accounts.get("acc").balance == 7

    asyncio.run(main())


def test_a_checkpoint_of_one_front_resumes_on_the_other(store: EventStore, redis_url: str) -> None:
    for i in range(5):
        store.append("Account", f"a{i}", [Deposited(amount=i)], 0)
    with store.subscribe() as sub:
        taken = [next(sub) for _ in range(3)]
        saved = str(sub.checkpoint)
    assert [e.event for e in taken] == [Deposited(amount=i) for i in range(3)]

    async def main() -> list[int]:
        async with await AsyncEventStore.from_url(redis_url, namespace=store.namespace) as aio:
            await aio.append("Account", "a5", [Deposited(amount=5)], 0)
            amounts = []
            async with aio.subscribe(after=saved) as sub:
                async for recorded in sub:
                    amounts.append(recorded.event.amount)  # type: ignore[attr-defined]
                    if len(amounts) == 3:
                        again = str(sub.checkpoint)
                        break
            return [*amounts, *(e.event.amount for e in store.read_all(after=again))]  # type: ignore[attr-defined]

    assert asyncio.run(main()) == [3, 4, 5]
