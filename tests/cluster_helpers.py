"""Test helpers for Redis Cluster: where a namespace's partitions land."""

from __future__ import annotations

import contextlib

from redis.crc import key_slot

from eventstore._core.keys import KeySchema
from eventstore.testing import RedisClusterServers, RedisServer


def slot_owners(cluster: RedisClusterServers) -> dict[tuple[int, int], int]:
    """Slot range -> port of the primary serving it, as the primaries say now."""
    with contextlib.closing(cluster.primaries()[0].client()) as client:
        ranges = client.execute_command("CLUSTER", "SLOTS")  # type: ignore[no-untyped-call]
    # each range: low, high, [primary host, port, id], replicas...
    return {(int(low), int(high)): int(primary[1]) for low, high, primary, *_ in ranges}


def owner_of(cluster: RedisClusterServers, key: str) -> RedisServer:
    """The primary serving ``key``'s slot."""
    slot = key_slot(key.encode())
    port = next(p for (low, high), p in slot_owners(cluster).items() if low <= slot <= high)
    return cluster.node_at(port)


def spread_namespace(cluster: RedisClusterServers, base: str, partitions: int) -> str:
    """A namespace (``base`` + a number) whose partitions land on every primary."""
    owners = slot_owners(cluster)
    for attempt in range(1000):  # with 6 partitions on 3 primaries, 3 in 4 do
        namespace = f"{base}{attempt}"
        keys = KeySchema(namespace, partitions)
        slots = [key_slot(keys.log(p).encode()) for p in range(partitions)]
        ports = {port for (low, high), port in owners.items() for s in slots if low <= s <= high}
        if ports == set(owners.values()):
            return namespace
    raise AssertionError(f"no namespace {base}<n> spreads {partitions} partitions everywhere")
