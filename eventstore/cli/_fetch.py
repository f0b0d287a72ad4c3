"""Reads the CLI needs beyond the store's API: types, ids, key scans (never on a hot path)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

from eventstore._redis.store import EventStore

__all__ = ["aggregate_ids", "aggregate_types", "count_ids", "scan_keys", "text"]


def text(value: bytes | str) -> str:
    """A Redis reply as text."""
    return value.decode() if isinstance(value, bytes) else value


def aggregate_types(store: EventStore) -> list[str]:
    """Every aggregate type with events in the namespace (from the per-partition type sets)."""
    found: set[str] = set()
    for partition in range(store.partitions):
        members = cast(set[bytes], store.client.smembers(store.keys.types(partition)))
        found.update(text(member) for member in members)
    return sorted(found)


def aggregate_ids(store: EventStore, aggregate_type: str) -> Iterator[str]:
    """The ids of every aggregate of ``aggregate_type`` (index sets, SSCAN in pages)."""
    for partition in range(store.partitions):
        key = store.keys.index(partition, aggregate_type)
        for member in store.client.sscan_iter(key, count=1000):
            yield text(member)


def count_ids(store: EventStore, aggregate_type: str) -> int:
    """How many aggregates of ``aggregate_type`` exist."""
    with store.client.pipeline(transaction=False) as pipe:
        for partition in range(store.partitions):
            pipe.scard(store.keys.index(partition, aggregate_type))
        return sum(int(n) for n in pipe.execute())


def scan_keys(store: EventStore, pattern: str) -> Iterator[str]:
    """Keys matching ``pattern`` (SCAN: only for inspection commands, never a hot path)."""
    for key in store.client.scan_iter(match=pattern, count=1000):
        yield text(key)
