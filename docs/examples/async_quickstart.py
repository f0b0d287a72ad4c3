"""The asyncio front: the same store, awaited. docs/async.md quotes this program.

Opening, append/read/load, the repository, read_all, a catch-up subscription, many
tasks on one connection, and cancellation.

Run it against any server: EVENTSTORE_URL=redis://127.0.0.1:6379/0 python async_quickstart.py
"""

import asyncio
import contextlib
import os

from aggregates import Aggregate, DomainEvent, projector
from eventstore import (
    FROM_NOW,
    AsyncEventStore,
    AsyncRepository,
    ConcurrencyError,
    ExpectedVersion,
)

URL = os.environ.get("EVENTSTORE_URL", "redis://127.0.0.1:6379/0")


class Deposited(DomainEvent):
    amount: int


class Account(Aggregate):
    balance: int = 0

    def deposit(self, amount: int) -> None:
        if amount <= 0:
            raise ValueError("amount must be positive")
        self.trigger(Deposited(amount=amount))

    @projector(Deposited)
    def _deposited(self, event: Deposited) -> None:
        self.balance += event.amount


async def store_calls(store: AsyncEventStore) -> None:
    await store.append("Account", "acc-1", [Deposited(amount=10)], ExpectedVersion.NO_STREAM)
    await store.append("Account", "acc-1", [Deposited(amount=5)], expected_version=1)
    for recorded in await store.read("Account", "acc-1"):
        print(f"acc-1 version {recorded.version}: {recorded.event}")
    loaded = await store.load("Account", "acc-1")  # snapshot and tail, one round trip
    assert loaded.current_version == await store.version_of("Account", "acc-1") == 2


async def repository(store: AsyncEventStore) -> None:
    accounts = AsyncRepository(store, Account, snapshot_every=100)
    account = Account(id="acc-2")
    account.deposit(10)
    await accounts.save(account)  # one atomic append, expected version checked
    assert (await accounts.get("acc-2")).balance == 10

    first, second = await accounts.get("acc-2"), await accounts.get("acc-2")
    first.deposit(1)
    await accounts.save(first)
    second.deposit(2)
    try:
        await accounts.save(second)  # loaded at version 1; the stream is at 2 now
    except ConcurrencyError as conflict:
        print(f"conflict: expected {conflict.expected_version}, found {conflict.actual_version}")


async def reading_across(store: AsyncEventStore) -> None:
    async for recorded in store.read_all(aggregate_types=["Account"]):
        print(f"position {recorded.position}: {recorded.aggregate_id} v{recorded.version}")

    start = await store.head()  # resume points are the same Checkpoint as on the sync front
    await store.append("Account", "acc-3", [Deposited(amount=7)])
    async with store.subscribe(after=start, event_types=["Deposited"]) as sub:
        async for recorded in sub:
            print(f"subscribed: {recorded.aggregate_id} +{recorded.data['amount']}")
            saved = str(sub.checkpoint)  # store it anywhere; after=saved resumes there
            break
    assert saved != str(start)
    assert [r async for r in store.read_all(after=FROM_NOW)] == []


async def many_tasks(store: AsyncEventStore) -> None:
    # A thousand appends from a thousand tasks: written together on one connection.
    appends = [store.append("Account", f"bulk-{i}", [Deposited(amount=1)]) for i in range(1000)]
    results = await asyncio.gather(*appends)
    print(f"{len(results)} appends from concurrent tasks, all at version 1")
    assert {result.first_version for result in results} == {1}

    # Cancelled calls leave the shared connection in step: the next calls read their own.
    reads = [asyncio.create_task(store.version_of("Account", f"bulk-{i}")) for i in range(100)]
    for task in reads[::2]:
        task.cancel()
    done = await asyncio.gather(*reads, return_exceptions=True)
    assert all(v == 1 for v in done[1::2])
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(0):
            await store.read("Account", "bulk-0")  # timed out before its reply came
    assert len(await store.read("Account", "bulk-1")) == 1


async def main() -> None:
    async with await AsyncEventStore.from_url(URL, namespace="async-bank") as store:
        await store_calls(store)
        await repository(store)
        await reading_across(store)
        await many_tasks(store)


asyncio.run(main())
