# unasync: generates the sync module of the same name
"""The lease of a projection version: one runner at a time applies its events.

A runner takes the lease when it starts (newest wins, e.g. during a rolling deploy) and
every write it makes afterwards is guarded by it: a page commit (model + checkpoint) and
a failure record are scripts that first check the lease key holds this runner's
``token``. A runner that was taken over or retired writes nothing and stops with
``ProjectionTakenOver``.
"""

from __future__ import annotations

import uuid

import redis.asyncio as redis

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
