"""A projection whose connection dies at its commit reconnects and resumes.

A lost connection is never a takeover: the runner retries from the checkpoint stored in
Redis, and each event takes effect once.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from eventstore import EventStore, Projection, ProjectionContext
from eventstore.testing import RedisServer
from tests.domain import Deposited


def test_a_connection_killed_at_the_commit_is_retried_not_a_takeover(
    store: EventStore, redis_url: str
) -> None:
    store.append("Account", "a1", [Deposited(amount=n) for n in range(1, 11)], 0)
    projection = Projection(store, "totals", page_size=3)

    @projection.on(Deposited)
    def _deposited(event: Deposited, ctx: ProjectionContext) -> None:
        ctx.pipe.incrby(ctx.key("total"), event.amount)

    real_commit = projection._run_commit
    kills = {"n": 0}
    killer = redis.Redis.from_url(redis_url)

    def kill_then_commit(keys: list[str], args: list[Any]) -> list[Any]:
        # a real kill of the store's connections, right before the commit is sent
        if kills["n"] < 2:
            kills["n"] += 1
            killer.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")  # type: ignore[no-untyped-call]
        return real_commit(keys, args)

    projection._run_commit = kill_then_commit  # type: ignore[method-assign]
    try:
        projection.run(until_caught_up=True)
    finally:
        killer.close()
    assert kills["n"] == 2
    assert int(store.client.get(projection.key("total")) or 0) == sum(range(1, 11))
    assert projection.checkpoint().position(0) == 10


def test_a_blip_long_after_an_earlier_one_is_retried_too(store: EventStore) -> None:
    """``reconnect_for`` bounds one outage, not the projection's lifetime."""
    store.append("Account", "a1", [Deposited(amount=n) for n in range(1, 4)], 0)
    projection = Projection(store, "totals", page_size=1, reconnect_for=0.3)

    @projection.on(Deposited)
    def _deposited(event: Deposited, ctx: ProjectionContext) -> None:
        if event.amount == 2:
            time.sleep(0.5)  # healthy work, longer than reconnect_for
        ctx.pipe.incrby(ctx.key("total"), event.amount)

    real_commit = projection._run_commit
    commits = {"n": 0}

    def lose_then_commit(keys: list[str], args: list[Any]) -> list[Any]:
        # the first commit of event 1 and the first of event 2 lose their connection
        commits["n"] += 1
        if commits["n"] in (1, 3):
            raise redis.ConnectionError("connection lost before the commit")
        return real_commit(keys, args)

    projection._run_commit = lose_then_commit  # type: ignore[method-assign]
    projection.run(until_caught_up=True)
    assert commits["n"] >= 4
    assert int(store.client.get(projection.key("total")) or 0) == 6
    assert projection.checkpoint().position(0) == 3


def test_a_server_down_while_a_handler_reads_the_model_is_retried(
    aof_server: RedisServer,
) -> None:
    """A handler reading through ``ctx.client`` meets the projection's own lost server: that
    is no handler failure (no ``ProjectionError``, nothing recorded): it reconnects."""
    # no redis-py retries: the lost server reaches the projection at once
    store = EventStore.from_url(aof_server.url, namespace="rs", retry=Retry(NoBackoff(), 0))
    store.append("Account", "a1", [Deposited(amount=n) for n in range(1, 4)], 0)
    projection = Projection(store, "running", page_size=2, reconnect_for=20)
    outages: list[threading.Timer] = []

    @projection.on(Deposited)
    def _deposited(event: Deposited, ctx: ProjectionContext) -> None:
        client = ctx.client  # commits the earlier events of the page first
        if event.amount == 2 and not outages:
            aof_server.stop()  # clean shutdown: the AOF keeps what was committed
            outages.append(threading.Timer(0.5, aof_server.start))
            outages[0].start()
        total = int(client.get(ctx.key("total")) or 0)
        ctx.pipe.set(ctx.key("total"), total + event.amount)

    try:
        projection.run(until_caught_up=True)
        assert int(store.client.get(projection.key("total")) or 0) == 6
        assert projection.checkpoint().position(0) == 3
        assert projection.last_error() is None
    finally:
        for outage in outages:
            outage.join(30)
        store.close()
