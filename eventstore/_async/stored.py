# unasync: generates the sync module of the same name
"""The store's boundary for stored data Redis refuses to work on: a key of the wrong type.

``WRONGTYPE`` names no key (and from a script, only a line of Lua). Call sites name the
keys they touch and the type each should have; on that error path only, ``TYPE`` finds
the key at fault::

    async with refusals(self.client, {stream: "stream", snapshot: "hash"}, command="xrange"):
        entries = await self.client.xrange(stream)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as redis

from eventstore._core.errors import StoredDataError
from eventstore._core.replies import stored_count, text
from eventstore._redis.permissions import raise_if_denied

__all__ = ["raise_if_wrong_type", "refusals", "stored_int"]


@asynccontextmanager
async def refusals(
    client: Any, expected: Mapping[str, str], *, command: str = ""
) -> AsyncIterator[None]:
    """Turn Redis refusing a read into the store's typed errors: ``PermissionDenied`` when
    the ACL refuses ``command`` (if given) on the ``expected`` keys, ``StoredDataError``
    naming the key when one holds another type than ``expected`` says."""
    try:
        yield
    except redis.ResponseError as exc:
        if command:
            raise_if_denied(exc, client, keys=tuple(expected), command=command)
        await raise_if_wrong_type(exc, client, expected)
        raise


async def raise_if_wrong_type(
    exc: redis.ResponseError, client: Any, expected: Mapping[str, str]
) -> None:
    """Raise ``StoredDataError`` naming the key of ``expected`` that has another type
    (``expected`` maps each key touched to ``stream``, ``hash``, ``string``...); else return."""
    if "WRONGTYPE" not in str(exc):
        return
    for key, kind in expected.items():
        found = text(await client.type(key))
        if found not in (kind, "none"):
            raise StoredDataError(key, 0, "type", f"the key holds a {found}, not a {kind}") from exc
    first = next(iter(expected), "?")
    raise StoredDataError(first, 0, "type", f"a key holds the wrong type: {exc}") from exc


async def stored_int(client: Any, key: str, field: str, raw: Any, kind: str = "string") -> int:
    """A counter or checkpoint read in a pipeline (``raise_on_error=False``): its value
    (0 if absent), or a ``StoredDataError`` naming ``key`` (a ``kind`` is expected there)."""
    if isinstance(raw, redis.ResponseError):
        await raise_if_wrong_type(raw, client, {key: kind})
        raise raw
    return stored_count(key, field, raw)
