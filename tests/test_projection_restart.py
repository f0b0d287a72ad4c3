"""A server restart in the middle of a projection's run, on both fronts: no gap, no duplicate.

The server (AOF fsynced on every write) goes away inside a page during catch-up, and
again while the runner waits for new events. The handler's writes are not idempotent
(INCRBY, and a counter per event id), so an event applied twice, or a checkpoint moved
without its model, shows up in the model.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
import redis
import redis.asyncio.retry
import redis.retry
from redis.backoff import NoBackoff

from eventstore import Checkpoint
from eventstore.testing import RedisServer
from tests.domain import Deposited
from tests.fronts import Front
from tests.projection_fronts import PROJECTIONS, handle, opened, ready, running

pytestmark = [pytest.mark.both_fronts, pytest.mark.slow]

ACCOUNTS, BEFORE, AFTER = 4, 20, 5
"""Accounts, deposits each before the live phase, deposits each after the restart."""


async def _again(call: Callable[[], Any]) -> Any:
    """``call()``'s result once the server answers (the test's own calls have no retries)."""
    for _ in range(200):
        try:
            return await ready(call())
        except redis.ConnectionError:
            await asyncio.sleep(0.05)
    raise AssertionError("the server did not come back")


async def _deposit(store: Any, account: int, amounts: range) -> None:
    events = [Deposited(amount=n) for n in amounts]
    ids = [f"a{account}-{n}" for n in amounts]  # a re-sent append is recognised, not doubled
    await _again(
        lambda: store.append("Account", f"a{account}", events, amounts.start - 1, event_ids=ids)
    )


def _no_retries(front: Front) -> Any:
    # the lost server reaches the projection at once: its own reconnect is what is tested
    if front == "sync":
        return redis.retry.Retry(NoBackoff(), 0)
    return redis.asyncio.retry.Retry(NoBackoff(), 0)


def test_a_server_restart_mid_run_leaves_no_gap_and_no_duplicate(
    aof_server: RedisServer, front: Front
) -> None:
    async def main() -> None:
        options = {"namespace": "rs", "partitions": 2, "retry": _no_retries(front)}
        async with opened(front, aof_server.url, **options) as store:
            for account in range(ACCOUNTS):
                await _deposit(store, account, range(1, BEFORE + 1))
            totals = PROJECTIONS[front](
                store, "totals", page_size=4, block_ms=100, reconnect_for=30
            )
            handled: list[int] = []
            outage: list[threading.Timer] = []

            def deposited(event: Deposited, ctx: Any) -> None:
                ctx.pipe.incrby(ctx.key("sum"), event.amount)
                ctx.pipe.hincrby(ctx.key("applied"), ctx.record.event_id, 1)
                handled.append(ctx.record.position)
                if len(handled) == 30 and not outage:  # inside a page, its writes queued
                    aof_server.stop()  # clean shutdown: the AOF keeps what was committed
                    outage.append(threading.Timer(0.5, aof_server.start))
                    outage[0].start()

            handle(totals, Deposited, deposited)
            async with running(totals):
                async with asyncio.timeout(30):
                    while not outage or outage[0].is_alive():
                        await asyncio.sleep(0.05)
                assert await _again(lambda: totals.wait_until_caught_up(30))

                aof_server.restart()  # while the runner waits for new events
                for account in range(ACCOUNTS):
                    await _deposit(store, account, range(BEFORE + 1, BEFORE + AFTER + 1))
                assert await _again(lambda: totals.wait_until_caught_up(30))
                assert totals.running

            per_account = BEFORE + AFTER
            applied = await _again(lambda: store.client.hgetall(totals.key("applied")))
            assert len(applied) == ACCOUNTS * per_account  # no gap
            assert set(applied.values()) == {b"1"}  # no duplicate
            total = await _again(lambda: store.client.get(totals.key("sum")))
            assert int(total) == ACCOUNTS * sum(range(1, per_account + 1))
            head = await _again(store.head)
            assert await _again(totals.checkpoint) == head != Checkpoint.start(2)
            assert await _again(totals.last_error) is None
            assert len(handled) > ACCOUNTS * per_account  # the page cut short was handled again

    asyncio.run(main())
