# unasync: generates the sync module of the same name
"""A projection version's state in Redis, which any process may read or change.

Its read model keys (``<ns>:rm:<name>:v<version>:...``), its checkpoint (the field
``projection:<name>:v<version>`` of each partition's ``{ns:pN}:ckpt`` hash), its last
failure, its lease, and which version serves reads (``<ns>:projections``). Promoting and
retiring a version need no runner; ``AsyncProjection`` adds handlers and running.

On a cluster the version's keys share its own hash tag (``KeySchema.projection_tag``)
and its checkpoints are a hash in that slot (``p<n>`` fields), committed with the model
in one script; the partitions' ``{ns:pN}:ckpt`` fields are then floors the runner
writes after each commit, for the logs' safe trim point.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from eventstore._async.stored import stored_int
from eventstore._core.checkpoint import Checkpoint
from eventstore._core.errors import ConfigurationError
from eventstore._core.keys import validate_name
from eventstore._core.projections import ProjectionFailure, parse_failure

if TYPE_CHECKING:
    from eventstore._async.store import AsyncEventStore

__all__ = ["AsyncProjectionAdmin"]

_BATCH = 500  # model keys per SCAN call and per UNLINK when retiring


class AsyncProjectionAdmin:
    """Projection ``name`` at ``version`` on ``store``: its keys, checkpoint and status."""

    def __init__(self, store: AsyncEventStore, name: str, version: int) -> None:
        validate_name("projection", name)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValueError(f"projection version must be an int >= 1, got {version!r}")
        self.store = store
        self.name = name
        self.version = version

    @property
    def checkpoint_field(self) -> str:
        """This version's field in every partition's ``{ns:pN}:ckpt`` hash (on a cluster
        a floor of its checkpoint there, see the module docstring)."""
        return f"projection:{self.name}:v{self.version}"

    @property
    def clustered(self) -> bool:
        """Whether the store is a cluster (the version's keys have their own slot)."""
        return self.store.keys.clustered

    def checkpoint_at(self, partition: int) -> tuple[str, str]:
        """The hash and field holding this version's checkpoint of ``partition``."""
        keys = self.store.keys
        if self.clustered:
            return keys.projection_checkpoints(self.name, self.version), f"p{partition}"
        return keys.checkpoints(partition), self.checkpoint_field

    def key(self, *parts: str) -> str:
        """A read model key of this version."""
        return self.store.keys.read_model(self.name, self.version, *parts)

    @property
    def lease_key(self) -> str:
        """The key holding the token of the runner that applies this version."""
        return self.store.keys.projection_lease(self.name, self.version)

    @property
    def error_key(self) -> str:
        """The hash recording this version's last failure (see ``last_error``)."""
        return self.store.keys.projection_error(self.name, self.version)

    # -- reading state --------------------------------------------------------------------

    async def checkpoint(self) -> Checkpoint:
        """The committed checkpoint, read from Redis (the start if never run)."""
        places = [self.checkpoint_at(partition) for partition in range(self.store.keys.partitions)]
        async with self.store.client.pipeline(transaction=False) as pipe:
            for key, field in places:
                pipe.hget(key, field)
            stored = await pipe.execute(raise_on_error=False)
        client = self.store.client
        positions = [
            await stored_int(client, key, field, raw, "hash")
            for (key, field), raw in zip(places, stored, strict=True)
        ]
        return Checkpoint(tuple(positions))

    async def last_error(self) -> ProjectionFailure | None:
        """Why this version last stopped, read from Redis; ``None`` if it is past it.

        Any process sees it: a runner records it when a handler (or a read model write)
        fails, and deletes it in the commit that takes the checkpoint past the failed
        event, or when the version is retired.
        """
        fields = cast(dict[bytes, bytes], await self.store.client.hgetall(self.error_key))
        return parse_failure(self.error_key, self.name, self.version, fields)

    async def active_version(self) -> int | None:
        """The version promoted to serve reads, if any."""
        raw = await self.store.client.hget(self.store.keys.projections, self.name)
        return int(raw) if raw is not None else None

    async def active_key(self, *parts: str) -> str:
        """A read model key of the promoted version (this one if none is promoted yet)."""
        version = await self.active_version() or self.version
        return self.store.keys.read_model(self.name, version, *parts)

    # -- blue/green -----------------------------------------------------------------------

    async def promote(self) -> None:
        """Make this version the one readers use (blue/green switch)."""
        await self.store.client.hset(self.store.keys.projections, self.name, self.version)

    async def retire(self) -> int:
        """Delete this (not promoted) version's model keys, checkpoint and last error.

        Returns how many model keys were deleted.
        """
        if await self.active_version() == self.version:
            raise ConfigurationError(
                f"projection {self.name!r} version {self.version} serves reads: "
                "promote another version before retiring it"
            )
        client, keys = self.store.client, self.store.keys
        # The lease goes first: a runner still applying this version commits under it
        # (WATCH), so once it is gone no commit can recreate model keys or re-register
        # the checkpoint after they are deleted below.
        await client.delete(self.lease_key)
        # unlinked while scanning, in batches: a large model is never one huge UNLINK
        doomed, deleted = [self.key()], 0
        async for key in client.scan_iter(match=f"{self.key()}:*", count=_BATCH):
            doomed.append(key)
            if len(doomed) >= _BATCH:
                deleted += int(await client.unlink(*doomed))
                doomed = []
        if doomed:
            deleted += int(await client.unlink(*doomed))
        for partition in range(keys.partitions):
            await client.hdel(keys.checkpoints(partition), self.checkpoint_field)
        if self.clustered:
            await client.delete(keys.projection_checkpoints(self.name, self.version))
        await client.delete(self.error_key)
        return deleted
