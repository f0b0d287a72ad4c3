# unasync: generates the sync module of the same name
"""Who listens to the live channels: classic (PUBSUB NUMSUB) and sharded (SHARDNUMSUB).

The connections that subscribe are the store's shared hub (``eventstore._async.hub``):
one per server for all the feeds of a process, so these counts are of processes (stores)
listening, not of feeds.
"""

from __future__ import annotations

from typing import Any, cast

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster

from eventstore._core.keys import KeySchema
from eventstore._core.notifications import LiveStats
from eventstore._core.replies import text

__all__ = ["classic_live_stats", "sharded_live_stats"]


async def classic_live_stats(client: redis.Redis, keys: KeySchema) -> LiveStats:
    """Subscribers per classic live channel of the namespace, and the server's patterns."""
    listed = cast(list[bytes], await client.pubsub_channels(keys.live_pattern))
    channels = [text(channel) for channel in listed]
    counts = cast(list[tuple[Any, int]], await client.pubsub_numsub(*channels)) if channels else []
    numbers = {text(name): int(count) for name, count in counts}
    patterns = int(await client.pubsub_numpat())
    return LiveStats.of(keys, numbers, patterns, sharded=False)


async def sharded_live_stats(cluster: RedisCluster, keys: KeySchema) -> LiveStats:
    """Subscribers per sharded live channel, asked of every primary about its own channels.

    ``PUBSUB SHARDNUMSUB`` is answered by whichever node gets it, with its own count (0 on
    a node that does not own the channel), so each node is asked about what it lists.
    """
    numbers: dict[str, int] = {}
    # the sync cluster client is untyped, the async one typed: one source for both
    nodes: Any = cluster
    for node in nodes.get_primaries():
        listed = cast(
            list[bytes],
            await nodes.execute_command(
                "PUBSUB SHARDCHANNELS", keys.live_shard_pattern, target_nodes=node
            ),
        )
        if not listed:
            continue
        counts = cast(
            list[tuple[Any, int]],
            await nodes.execute_command("PUBSUB SHARDNUMSUB", *listed, target_nodes=node),
        )
        numbers.update({text(name): int(count) for name, count in counts if int(count) > 0})
    return LiveStats.of(keys, numbers, 0, sharded=True)
