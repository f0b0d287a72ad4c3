# unasync: generates the sync module of the same name
"""``AsyncWorker``: one competing consumer of a consumer group (``AsyncConsumerGroup``).

Its loop: on start, take back its own pending entries (XREADGROUP id ``0``); then, in
turn, claim entries idle longer than ``claim_idle`` (XAUTOCLAIM: their holder died or
stalled, or their handler failed and they are due for a retry) and read new ones
(XREADGROUP ``>``, blocking a short while). What it reads goes to its deliverer
(``eventstore._async.delivering``), which runs the handler and acknowledges each entry
only after it returned (the entries of one read together, one XACK per stream, so a crash
re-delivers at most that read's handled entries); a failure leaves it pending, so it
comes back after ``claim_idle``, until its own delivery count reaches ``max_deliveries``
and it is parked.

A lost connection (or a restarting server) does not end ``run``: the worker backs off
(jittered, capped) and starts over by draining its own pending entries, which still hold
whatever it had read but not acknowledged (the event in hand included, if its XACK
failed). It gives up with ``WorkerDisconnected`` after ``reconnect_for`` seconds of one
continuous outage.

On a single server one XREADGROUP reads every partition's log and retry stream, and the
blocking read waits on all of them (``AsyncBlockingReads`` says on which connection).
On a Redis Cluster the partitions live in different slots: the worker reads each
partition with its own (non-blocking) XREADGROUP on the node owning it, and when every
partition is empty it sleeps on the live notifications (sharded Pub/Sub, as catch-up
subscriptions do) for at most ``block``. A notification only wakes it up: a lost one
costs at most ``block`` of latency, never an event. A failover (dead node, moved slot)
is an outage like any other: the worker re-reads the slot map and carries on.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

import redis.asyncio as redis

from eventstore._async.batch import send_batch
from eventstore._async.connections import AsyncBlockingReads
from eventstore._async.delivering import AsyncDeliverer, Batch
from eventstore._async.groups import command
from eventstore._async.io import AsyncEvent, Handler
from eventstore._core.backoff import Backoff
from eventstore._core.errors import WorkerDisconnected
from eventstore._core.groups import (
    ClaimReply,
    WorkerStats,
    parse_claim_reply,
    parse_pending_entries,
    parse_read_reply,
)
from eventstore._core.keys import validate_name
from eventstore._core.notifications import LiveSelection
from eventstore._core.records import RecordedEvent
from eventstore._redis.permissions import raise_if_denied

if TYPE_CHECKING:
    from eventstore._async.groups import AsyncConsumerGroup, GroupStream
    from eventstore._async.live import AsyncLiveFeed

__all__ = ["AsyncWorker", "WorkerStats"]

# Redelivered entries (own pending on start, claimed ones) are taken one at a time: a
# delivery raises an entry's count even if the worker dies before trying it, so a
# poison event that kills workers must not drag a batch of healthy ones to the limit.
REDELIVERY_BATCH = 1


class AsyncWorker:
    """A consumer of a group: ``run()`` handles events until ``stop()`` (or idle).

    Made by ``AsyncConsumerGroup.worker``::

        stats = await worker.run()   # until worker.stop(), from any task or thread
        stats = await worker.run(stop_when_idle=True)   # or until the group is drained

    Graceful stop: the event in hand is finished and acknowledged; the rest of the batch
    is released untried (delivery count restored) for any worker to take. A killed
    worker loses nothing: its entries stay pending and are claimed after ``claim_idle``.
    A lost server is waited out for ``reconnect_for`` seconds (see the module docstring).
    """

    def __init__(
        self,
        group: AsyncConsumerGroup,
        consumer: str,
        handler: Handler[RecordedEvent],
        *,
        max_deliveries: int,
        claim_idle: timedelta,
        batch_size: int,
        block: timedelta,
        reconnect_for: float = 60.0,
    ) -> None:
        """A worker of ``group``: see ``AsyncConsumerGroup.worker``."""
        validate_name("consumer", consumer)
        if max_deliveries < 1 or batch_size < 1:
            raise ValueError("max_deliveries and batch_size must be >= 1")
        if reconnect_for < 0:
            raise ValueError(f"reconnect_for must be >= 0, got {reconnect_for}")
        self.group = group
        self.consumer = consumer
        self.handler = handler
        self.max_deliveries = max_deliveries
        self.claim_idle_ms = max(int(claim_idle.total_seconds() * 1000), 1)
        self.batch_size = batch_size
        self.reconnect_for = reconnect_for
        # Wake up often enough to claim, and never block as long as the socket timeout.
        self.block_ms = max(10, min(int(block.total_seconds() * 1000), self.claim_idle_ms // 2))
        self.stats = WorkerStats()
        self._raw = group.raw  # the raw client of the server holding a key
        self._retryable = group.raw.retryable
        # one read covers every stream on a single server; one partition's on a cluster
        self._read_sets: list[tuple[GroupStream, ...]] = (
            [group.partition_streams(p) for p in range(group.store.partitions)]
            if group.is_cluster
            else [group.streams]
        )
        self._hints: AsyncLiveFeed | None = None
        # nothing blocks in a command on a cluster: the worker waits on Pub/Sub there
        self._blocking = (
            None if group.is_cluster else AsyncBlockingReads(group.client, block_ms=self.block_ms)
        )
        self._stop = AsyncEvent()
        self._deliverer = AsyncDeliverer(
            group,
            consumer,
            handler,
            max_deliveries=max_deliveries,
            claim_idle_ms=self.claim_idle_ms,
            stats=self.stats,
            stop=self._stop,
        )
        self._last_claim = 0.0
        self._reads = 0

    def stop(self) -> None:
        """Ask ``run`` to return after the event in hand (safe from any task or thread)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """Whether ``stop()`` was called and ``run`` has not returned yet."""
        return self._stop.is_set()

    async def run(self, *, stop_when_idle: bool = False) -> WorkerStats:
        """Handle events until ``stop()``; with ``stop_when_idle``, also return once the
        group has nothing undelivered and nothing pending (retries included).

        Survives a lost server: reconnects with backoff and carries on; raises
        ``WorkerDisconnected`` after ``reconnect_for`` seconds of one continuous outage.
        """
        outage = Backoff()
        try:
            while not self._stop.is_set():
                try:
                    await self._work(stop_when_idle=stop_when_idle)
                    break
                except self._retryable as exc:
                    await self._back_off(outage, exc)
                    await self._raw.refresh()  # a failover moves slots to another node
        finally:
            self._stop.clear()
            await self._release()
        return self.stats

    async def _release(self) -> None:
        """Give back the connections ``run`` held: the hint feed, the blocking reads."""
        if self._hints is not None:
            hints, self._hints = self._hints, None
            await hints.aclose()
        if self._blocking is not None:
            await self._blocking.aclose()

    async def _work(self, *, stop_when_idle: bool) -> None:
        # Draining first also takes back, after a reconnect, what the lost link left
        # pending here: unacknowledged entries, and entries a lost read reply delivered.
        await self._drain_own_pending()
        while not self._stop.is_set():
            worked = await self._claim() if self._claim_due() else False
            if await self._read_new(block=False) or worked:
                continue
            if stop_when_idle and await self._group_idle():
                return
            await self._read_new(block=True)  # wait for new events, or for claims to fall due
        await self._flush_deferred()  # stopping: what was handled is acknowledged

    async def _back_off(self, outage: Backoff, exc: Exception) -> None:
        """Wait before reconnecting (``stop()`` cuts it short); give up past the limit."""
        if outage.failed(self._reads) > self.reconnect_for:
            raise WorkerDisconnected(
                self.group.name, self.consumer, self.reconnect_for, f"{exc}"
            ) from exc
        await self._stop.wait(outage.next_delay())

    async def _flush_deferred(self) -> None:
        await self._deliverer.flush_deferred()

    # -- reading --------------------------------------------------------------------------

    async def _xreadgroup(
        self, ids: Sequence[str], streams: Sequence[GroupStream], *, block: bool, count: int
    ) -> Any:
        args: list[str | int] = ["GROUP", self.group.name, self.consumer, "COUNT", count]
        if block:
            args += ["BLOCK", self.block_ms]
        args += ["STREAMS", *(stream.key for stream in streams), *ids]
        deferred = self._deliverer.deferred
        acks = [(stream, deferred.pop(stream)) for stream in streams if stream in deferred]
        commands: list[tuple[str | int, ...]] = [
            ("XACK", stream.key, self.group.name, *entry_ids) for stream, entry_ids in acks
        ]
        commands.append(("XREADGROUP", *args))
        client = self._raw.for_key(streams[0].key)
        try:  # the acknowledgements first, in the same round trip
            if block and self._blocking is not None:
                reply = await self._blocking.send(commands)
            else:
                reply = await send_batch(client, commands)
        except BaseException as exc:
            # sent again before anything else (or lost with the link: then the entries
            # are handled again, at least once)
            deferred.update(acks)
            if isinstance(exc, redis.ResponseError):
                keys = [stream.key for stream in streams]
                raise_if_denied(exc, client, keys=keys, command="xreadgroup")
            raise
        self.stats.processed += sum(len(entry_ids) for _, entry_ids in acks)
        self._reads += 1  # the link works: a later failure is a new outage
        return reply[-1]

    async def _drain_own_pending(self) -> None:
        """Take back what this consumer held when it last stopped (or died)."""
        await self._flush_deferred()
        for read_set in self._read_sets:
            await self._drain_own_pending_of(read_set)

    async def _drain_own_pending_of(self, read_set: Sequence[GroupStream]) -> None:
        after = {stream.key: "0" for stream in read_set}
        while after and not self._stop.is_set():
            streams = [s for s in read_set if s.key in after]
            ids = list(after.values())
            read = parse_read_reply(
                await self._xreadgroup(ids, streams, block=False, count=REDELIVERY_BATCH)
            )
            batches: list[Batch] = []
            for stream in streams:
                entries = read.get(stream.key, [])
                if not entries:
                    del after[stream.key]
                    continue
                after[stream.key] = entries[-1][0].decode()
                deliveries = await self._deliverer.prepare(stream, entries, redelivered=True)
                batches.append((stream, deliveries))
            await self._deliverer.deliver_all(batches)

    async def _read_new(self, *, block: bool) -> bool:
        if block and self.group.is_cluster:
            await self._wait_for_hint()  # the next round reads every partition again
            return False
        batches: list[Batch] = []
        for streams in self._read_sets:
            ids = [">"] * len(streams)
            read = parse_read_reply(
                await self._xreadgroup(ids, streams, block=block, count=self.batch_size)
            )
            for stream in streams:
                entries = read.get(stream.key)
                if entries:
                    deliveries = await self._deliverer.prepare(stream, entries, redelivered=False)
                    batches.append((stream, deliveries))
        # One round holds entries of several streams: deliver them as one batch, so the
        # entries of later partitions are renewed while earlier ones are handled (else they
        # look abandoned and another worker claims them while this one still will run them).
        await self._deliverer.deliver_all(batches, defer_acks=True)
        return bool(batches)

    async def _wait_for_hint(self) -> None:
        """Sleep until a live notification (any type) or ``block`` passes (cluster only)."""
        await self._flush_deferred()
        if self._hints is None:
            from eventstore._async.live import AsyncLiveFeed

            hints = AsyncLiveFeed(self.group.store, LiveSelection.of(None, None, None))
            await hints.open()
            self._hints = hints
        await self._hints.wait_for_any(self.block_ms / 1000)

    def _claim_due(self) -> bool:
        return (time.monotonic() - self._last_claim) * 1000 >= self.claim_idle_ms / 2

    async def _claim(self) -> bool:
        """Take over entries idle longer than ``claim_idle``, from any consumer."""
        await self._flush_deferred()
        self._last_claim = time.monotonic()
        claimed = False
        for stream in self.group.streams:
            cursor = "0-0"
            while not self._stop.is_set():
                reply = await self._autoclaim(stream, cursor)
                self.stats.deleted += len(reply.deleted)  # 7.x dropped them from the PEL
                if reply.has_holes:
                    await self._ack_deleted(stream, cursor, reply.cursor)
                if reply.entries:
                    claimed = True
                    self.stats.claimed += len(reply.entries)
                    entries = list(reply.entries)
                    deliveries = await self._deliverer.prepare(stream, entries, redelivered=True)
                    await self._deliverer.deliver_all([(stream, deliveries)])
                cursor = reply.cursor
                if reply.done:
                    break
        return claimed

    async def _autoclaim(self, stream: GroupStream, cursor: str) -> ClaimReply:
        name, idle = self.group.name, self.claim_idle_ms
        args = (stream.key, name, self.consumer, idle, cursor, "COUNT", REDELIVERY_BATCH)
        client = self._raw.for_key(stream.key)
        try:
            return parse_claim_reply(await command(client, "XAUTOCLAIM", *args))
        except redis.ResponseError as exc:
            raise_if_denied(exc, client, keys=(stream.key,), command="xautoclaim")
            raise

    async def _ack_deleted(self, stream: GroupStream, start: str, end: str) -> None:
        """Redis 6.2 claims deleted entries as nils without ids: find and acknowledge them.

        They are the entries this consumer now holds in the scanned range whose id no
        longer exists in the stream.
        """
        high = "+" if end == "0-0" else f"({end}"
        client = self._raw.for_key(stream.key)
        name = self.group.name
        reply = await command(
            client, "XPENDING", stream.key, name, start, high, 2**31 - 1, self.consumer
        )
        for entry in parse_pending_entries(cast(Sequence[Any], reply)):
            if not await client.xrange(stream.key, entry.entry_id, entry.entry_id):
                await client.xack(stream.key, name, entry.entry_id)
                self.stats.deleted += 1

    async def _group_idle(self) -> bool:
        await self._flush_deferred()  # else they count as pending
        return all(s.lag == 0 and s.pending == 0 for s in await self.group.status())
