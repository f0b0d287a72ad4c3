# unasync: generates the sync module of the same name
"""Appends through a Redis Cluster failover: re-sent, with backoff, once the slots moved.

When a primary dies, its replica takes its slots over after ``cluster-node-timeout`` and
an election: a few seconds in which commands for those slots fail (connection refused,
``CLUSTERDOWN``, then ``MOVED`` from the nodes that already know). redis-py's cluster
client re-reads the slot map and re-sends a failed command at once, a few times, without
waiting, which is over long before the failover is; and a durable append goes to the
node's own connection (its WAIT must follow the write there), which redis-py does not
redirect at all.

So on a cluster the store itself re-sends a failed append, re-reading the slot map and
backing off, for up to ``FAILOVER_SECONDS``. That is safe because an append is
idempotent: its event ids are fixed before the first send, and the append script answers
a batch already at those versions with the original positions, writing nothing (whether
the earlier attempt was lost, or only its reply). With ``ExpectedVersion.ANY`` another
writer's events landing in between would hide the earlier attempt, so writers that may
race use exact expected versions (``Repository`` does). A wait that timed out
(``DurabilityError``) is not re-sent: the write happened.
"""

from __future__ import annotations

from typing import TypeVar

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from eventstore._async.io import Attempt, sleep
from eventstore._async.shards import RETRYABLE_ON_CLUSTER, refresh_slots
from eventstore._core.backoff import Backoff

__all__ = ["FAILOVER_SECONDS", "through_failover"]

FAILOVER_SECONDS = 15.0
"""How long an append on a cluster keeps re-sending: a failover with the default
``cluster-node-timeout`` (15 s) plus an election fits with ``cluster-node-timeout``
up to about 10 s."""

T = TypeVar("T")

_FAILOVER_ERRORS = (*RETRYABLE_ON_CLUSTER, RedisClusterException)


async def through_failover(
    client: redis.Redis, attempt: Attempt[T], *, seconds: float = FAILOVER_SECONDS
) -> T:
    """``attempt()``; on a cluster, re-sent after failover errors for up to ``seconds``.

    On a single server it runs once (redis-py's own retries apply). The last error is
    raised when the time is up.
    """
    if not isinstance(client, RedisCluster):
        return await attempt()
    backoff = Backoff(cap=0.5)
    while True:
        try:
            return await attempt()
        except _FAILOVER_ERRORS:
            if backoff.failed() + backoff.delay > seconds:
                raise
            await sleep(backoff.next_delay())
            await refresh_slots(client)
