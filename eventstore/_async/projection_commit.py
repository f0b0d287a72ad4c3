# unasync: generates the sync module of the same name
"""Applying one page of events: the handlers' writes and the checkpoint in one script.

Handlers queue their writes on ``ctx.pipe`` (queuing is not awaited on either front);
the page commits them with the projection's checkpoint in one Lua script
(``lua/projection_commit.lua``) that first checks this runner holds the version's lease
(``AsyncLease``): model and checkpoint move together, and a runner that was taken over
commits nothing. A handler that raises gets the writes of the events before it
committed, and the failure recorded in Redis. A write Redis refuses (e.g. WRONGTYPE)
stops the script there and leaves the checkpoint before the event that queued it, in
the same atomic step, so no crash can leave the checkpoint past that event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

import attrs
import redis.asyncio as redis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript

from eventstore._async.io import AsyncEvent
from eventstore._async.lease import AsyncLease
from eventstore._async.projection_admin import AsyncProjectionAdmin
from eventstore._async.shards import RETRYABLE
from eventstore._core.checkpoint import Checkpoint
from eventstore._core.codec import now_ms
from eventstore._core.errors import ProjectionError
from eventstore._core.groups import describe_error
from eventstore._core.log import FollowedPage
from eventstore._core.projections import failure_fields
from eventstore._core.records import RecordedEvent
from eventstore._redis.permissions import raise_if_denied

__all__ = ["AsyncPageCommits", "AsyncProjectionContext"]

_OUTSIDE_THE_SLOT = ("non local key", "same slot", "CROSSSLOT")
"""How a cluster node refuses a script's key outside the slot of its declared keys."""

_QUEUES = redis.Redis()
"""Makes the pipelines handlers queue their writes on: never executed (nor connected),
only read back by the commit, on one server and on a cluster alike."""


@attrs.define
class _Batch:
    """One page being applied: the queued writes and which of them belong to which event."""

    pipe: Pipeline
    partition: int
    committed: int
    handled: int
    marks: list[tuple[int, RecordedEvent]] = attrs.field(factory=list)


class AsyncProjectionContext:
    """What a handler gets next to the event: the record and where to write the model.

    Write through ``pipe`` (queued for the page's commit, applied with the checkpoint;
    queuing is not awaited; the replies are not returned). Read through ``client`` (a
    property, awaited on the asyncio front): it first commits the earlier events'
    writes, so reads see them; read before writing in a handler (reading after this
    event queued writes would not see them, so it raises).
    """

    def __init__(
        self, projection: AsyncPageCommits, batch: _Batch, record: RecordedEvent, mark: int
    ) -> None:
        self.projection = projection
        self.record = record
        self._batch = batch
        self._mark = mark

    @property
    def pipe(self) -> Pipeline:
        """The queue the read model writes go into (a pipeline, never executed itself)."""
        return self._batch.pipe

    def key(self, *parts: str) -> str:
        """A read model key of this projection version, e.g. ``ctx.key("by_email")``."""
        return self.projection.key(*parts)

    @property
    def client(self) -> Awaitable[redis.Redis]:
        """A client for reading the model, after committing the earlier events' writes."""
        return self._committed_client()

    async def _committed_client(self) -> redis.Redis:
        if len(self._batch.pipe.command_stack) > self._mark:
            raise RuntimeError(
                f"projection {self.projection.name!r}: read the model before queuing writes "
                f"in a handler ({self.record.event_type} at position {self.record.position})"
            )
        await self.projection._commit(self._batch, self._batch.handled)
        self._mark = 0
        self._batch.marks.append((0, self.record))  # the commit cleared the marks
        return self.projection.store.client


Handlers = dict[str, Callable[[Any, AsyncProjectionContext], Awaitable[None]]]


class AsyncPageCommits(AsyncProjectionAdmin):
    """The page commits of a projection runner (``AsyncProjection`` is the runner).

    It keeps what the commits move: the committed checkpoint (waking ``_moved``'s
    waiters), the number of commits, and the failed event this version is stopped at.
    """

    _handlers: Handlers
    _lease: AsyncLease
    _committed: Checkpoint
    _moved: AsyncEvent
    _failed: tuple[int, int] | None  # (partition, position) of last_error
    _commits: int  # successful commits so far: run() tells outages apart with it
    _commit_script: AsyncScript  # lua/projection_commit.lua on the store's client
    _fail_script: AsyncScript  # lua/projection_fail.lua

    async def _apply(self, page: FollowedPage) -> None:
        start = self._committed.position(page.partition)
        async with _QUEUES.pipeline(transaction=True) as pipe:
            batch = _Batch(pipe, page.partition, committed=start, handled=start)
            for record in page.events:
                await self._handle(batch, record)
            await self._commit(batch, page.last_position)

    async def _handle(self, batch: _Batch, record: RecordedEvent) -> None:
        mark = len(batch.pipe.command_stack)
        context = AsyncProjectionContext(self, batch, record, mark)
        batch.marks.append((mark, record))
        try:
            await self._handlers[record.event_type](record.event, context)
        except RETRYABLE:
            # The projection's own link failed (e.g. a read through ctx.client), not the
            # handler: run() reconnects and handles the event again from the checkpoint.
            raise
        except Exception as exc:
            # Drop this event's queued writes, keep the earlier events' ones: the checkpoint
            # stops right before the failed event, which is handled again after a restart.
            del batch.pipe.command_stack[context._mark :]
            batch.marks.pop()
            await self._commit(batch, batch.handled)
            raise await self._fail(record, f"handler raised {exc!r}", exc) from exc
        batch.handled = record.position

    async def _commit(self, batch: _Batch, position: int) -> None:
        if position <= batch.committed and not batch.pipe.command_stack:
            return
        queued = list(batch.pipe.command_stack)
        batch.pipe.command_stack.clear()
        passes = self._passes_failure(batch.partition, position)
        checkpoints, field = self.checkpoint_at(batch.partition)
        args: list[Any] = [
            self._lease.token, field, batch.committed, position, int(passes), len(queued),
        ]  # fmt: skip
        for (command, _options), owner in zip(queued, _owners(batch, len(queued)), strict=True):
            # where the checkpoint stops if Redis refuses this write: before its event
            args += [len(command), max(batch.committed, owner.position - 1), *command]
        keys = [self.lease_key, checkpoints, self.error_key]
        reply = await self._run_commit(keys, args)
        outcome = _text(reply[0])
        if outcome == "lost":
            raise self._lease.taken_over()
        if outcome == "moved":
            error = self._lease.taken_over()
            error.add_note(
                f"the checkpoint {field} in {checkpoints} is {_text(reply[1])}, "
                f"not {batch.committed} as this runner committed it: something else writes it"
            )
            raise error
        if outcome == "refused":
            index = int(reply[1]) - 1
            await self._refused(batch, index, _text(reply[2]), _text(queued[index][0][0]))
        if self.clustered:
            await self._register_floors({batch.partition: position})
        if passes:
            self._failed = None
        batch.committed, batch.marks = position, []
        self._commits += 1
        self._set_committed(self._committed.advance(batch.partition, position))

    async def _run_commit(self, keys: list[str], args: list[Any]) -> list[Any]:
        # one script under the lease (see lua/projection_commit.lua): the writes, then the
        # checkpoint, which stops before the event of a write Redis refuses
        try:
            return cast(list[Any], await self._commit_script(keys=keys, args=args))
        except redis.ResponseError as exc:  # refused as a whole (e.g. ACL): nothing applied
            raise_if_denied(
                exc, self.store.client, keys=keys, script=("projection_commit", self._commit_script)
            )
            raise

    async def _register_floors(self, positions: dict[int, int]) -> None:
        """On a cluster: these committed positions (partition -> position) as the version's
        field of the partitions' ``{ns:pN}:ckpt`` hashes, which the logs' safe trim point
        reads.

        Floors: written after the commit (a crash in between leaves them behind, which
        only trims less), never ahead of the checkpoint. Written for every partition at
        each start, so a version is registered before it reads anything.
        """
        client, keys = self.store.client, self.store.keys
        for partition, position in positions.items():
            await client.hset(keys.checkpoints(partition), self.checkpoint_field, position)
        holder = await client.get(self.lease_key)
        if holder is None:
            # retired meanwhile: take the floors back, or they would pin the trim point
            for partition in positions:
                await client.hdel(keys.checkpoints(partition), self.checkpoint_field)
        if holder != self._lease.token:
            raise self._lease.taken_over()

    async def _refused(self, batch: _Batch, index: int, message: str, command: str) -> None:
        # The writes before the refused one were applied (Redis has no rollback) and the
        # checkpoint now stands before the event that queued it: that event's writes (and
        # the later events' of this page) are applied again after the fix, so keep such
        # handlers idempotent.
        record = _owners(batch, index + 1)[index]
        exc = redis.ResponseError(message)
        reason = f"Redis refused a read model write: {message}"
        if self.clustered and any(words in message for words in _OUTSIDE_THE_SLOT):
            reason += " (on a cluster, write only the projection's own keys: ctx.key(...))"
        error = await self._fail(record, reason, exc)
        # an ACL refusal is the user's rights, not the event: say which (recorded too)
        raise_if_denied(exc, self.store.client, command=command.lower())
        raise error from exc

    def _set_committed(self, checkpoint: Checkpoint) -> None:
        self._committed = checkpoint
        self._wake_waiters()

    def _wake_waiters(self) -> None:
        # a fresh event per move: a waiter holds the one it checked the state against,
        # so a move between its check and its wait still wakes it
        moved, self._moved = self._moved, AsyncEvent()
        moved.set()

    def _passes_failure(self, partition: int, position: int) -> bool:
        if self._failed is None:
            return False
        failed_partition, failed_position = self._failed
        return partition == failed_partition and position >= failed_position

    async def _fail(self, record: RecordedEvent, reason: str, cause: Exception) -> ProjectionError:
        """The error to raise, once recorded in Redis for other processes to see."""
        error = self._error(record, reason)
        fields: dict[Any, Any] = failure_fields(error, describe_error(cause), now_ms())

        checkpoints, field = self.checkpoint_at(record.partition)
        pairs = [item for pair in fields.items() for item in pair]
        keys = [self.lease_key, self.error_key, checkpoints]
        try:
            # under the lease, with the version registered at 0 if it has no checkpoint yet
            reply = await self._fail_script(keys=keys, args=[self._lease.token, field, *pairs])
            if _text(reply[0]) == "lost":
                raise self._lease.taken_over()
        except redis.RedisError as exc:  # the raised error still names the event
            error.add_note(f"recording it in {self.error_key} failed too: {exc!r}")
        self._failed = (record.partition, record.position)
        return error

    def _error(self, record: RecordedEvent, reason: str) -> ProjectionError:
        stream = self.store.keys.stream(record.aggregate_type, record.aggregate_id)
        return ProjectionError(
            self.name,
            event_type=record.event_type,
            stream=stream,
            version=record.version,
            partition=record.partition,
            position=record.position,
            reason=reason,
        )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _owners(batch: _Batch, count: int) -> list[RecordedEvent]:
    """The event whose handler queued each of the ``count`` queued commands."""
    if count and not batch.marks:
        raise RuntimeError("queued writes belong to no event")
    owners, marks = [], batch.marks
    at = 0
    for index in range(count):
        while at + 1 < len(marks) and marks[at + 1][0] <= index:
            at += 1
        owners.append(marks[at][1])
    return owners
