# unasync: generates the sync module of the same name
"""The lease of a projection version: one runner at a time applies its events.

A runner takes the lease when it starts (newest wins, e.g. during a rolling deploy) and
every write it makes afterwards is guarded by it: a page commit (model + checkpoint) is a
script that first checks the lease holds this runner's ``token``, a failure record is a
MULTI/EXEC that WATCHes the lease key (``transaction()``). A runner that was taken over
or retired writes nothing and stops with ``ProjectionTakenOver``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as redis
from redis.asyncio.client import Pipeline

from eventstore._core.errors import ProjectionTakenOver

__all__ = ["AsyncLease"]


class AsyncLease:
    """The lease key of projection ``name`` version ``version``, and this runner's token.

    Each lease is one run: its token is fresh, and taken at the first ``take()``.
    """

    def __init__(self, client: redis.Redis, key: str, name: str, version: int) -> None:
        self.client = client
        self.key = key
        self.name = name
        self.version = version
        self._token = uuid.uuid4().hex.encode()
        self._taken = False

    async def take(self) -> None:
        """Take the lease once per run; after a reconnect, check nobody took it meanwhile."""
        if not self._taken:
            await self.client.set(self.key, self._token)
            self._taken = True
        elif not await self.held():
            raise self.taken_over()

    async def held(self) -> bool:
        """Whether the lease key still holds this runner's token."""
        return bool(await self.client.get(self.key) == self._token)

    @property
    def token(self) -> bytes:
        """This run's token, which the lease key holds while this runner has it."""
        return self._token

    def taken_over(self) -> ProjectionTakenOver:
        """The error a runner that lost the lease stops with."""
        return ProjectionTakenOver(self.name, self.version, self.key)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Pipeline]:
        """A pipeline in MULTI, WATCHing the lease after checking this runner holds it."""
        async with self.client.pipeline(transaction=True) as tx:
            await tx.watch(self.key)  # type: ignore[no-untyped-call,unused-ignore]
            try:
                holder = await tx.get(self.key)
            except redis.WatchError as exc:
                raise await self.lost(exc) from exc
            if holder != self._token:
                raise self.taken_over()
            tx.multi()  # type: ignore[no-untyped-call,unused-ignore]
            yield tx

    async def execute(self, tx: Pipeline, *, raise_on_error: bool = True) -> list[Any]:
        """EXEC a ``transaction()``; nothing applies if the lease moved since the WATCH."""
        try:
            return await tx.execute(raise_on_error=raise_on_error)
        except redis.WatchError as exc:
            raise await self.lost(exc) from exc

    async def lost(self, exc: redis.WatchError) -> Exception:
        """What a WatchError means: a takeover, or only a lost connection.

        redis-py raises WatchError too when the connection dies while a key is watched
        (before or after EXEC). If the lease is still ours, nobody took over: report a
        lost connection, which the runner retries from the checkpoint stored in Redis (the
        EXEC applied all or nothing), instead of stopping the projection for good.
        """
        if await self.held():
            return redis.ConnectionError(f"connection lost during a commit ({exc})")
        return self.taken_over()
