# unasync: generates the sync module of the same name
"""Handing a worker's entries to its handler: acknowledgements, dead letters and leases.

An entry is acknowledged only after the handler returned. The entries of one read are
acknowledged together, one XACK per stream (the main loop's ride with its next read); a
failure leaves the entry pending, to come back after ``claim_idle``, until its own
delivery count reaches ``max_deliveries`` and the ``group_fail`` script parks it in the
dead-letter stream. While a batch is handled, the entries waiting their turn are renewed
(``group_lease``) so that other workers do not take them for abandoned; on a graceful
stop the untried ones are released (delivery count restored) for any worker to take.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import attrs
import redis.asyncio as redis

from eventstore._async.groups import GroupStream, command
from eventstore._async.io import AsyncEvent, Handler
from eventstore._core.codec import now_ms
from eventstore._core.errors import StoredDataError
from eventstore._core.groups import (
    ErrorInfo,
    RawEntry,
    WorkerStats,
    dead_letter_fields,
    describe_error,
    parse_pending_entries,
    pointer_fields,
    pointer_from_fields,
)
from eventstore._core.log import Pointer, parse_pointers
from eventstore._core.records import RecordedEvent
from eventstore._redis.permissions import raise_if_denied

if TYPE_CHECKING:
    from eventstore._async.groups import AsyncConsumerGroup

__all__ = ["AsyncDeliverer", "Batch", "Delivery"]

RELEASED_IDLE_MS = 86_400_000
"""Idle time given to entries released on shutdown: far past any ``claim_idle``."""


@attrs.frozen
class Delivery:
    """One entry in a worker's hands: its event, or why the event could not be read."""

    entry_id: str
    pointer: Pointer | None  # None: the entry itself was malformed (see error)
    recorded: RecordedEvent | None
    error: Exception | None = None


Batch = tuple[GroupStream, list[Delivery]]
"""The deliveries a worker read from one stream."""


class AsyncDeliverer:
    """The handler side of a worker: runs it, acknowledges, parks, renews and releases.

    ``deferred`` holds handled log entries whose XACK rides with the worker's next read
    (one round trip less a batch); anything else the worker does first sends them.
    """

    def __init__(
        self,
        group: AsyncConsumerGroup,
        consumer: str,
        handler: Handler[RecordedEvent],
        *,
        max_deliveries: int,
        claim_idle_ms: int,
        stats: WorkerStats,
        stop: AsyncEvent,
    ) -> None:
        self.group = group
        self.consumer = consumer
        self.handler = handler
        self.max_deliveries = max_deliveries
        self.claim_idle_ms = claim_idle_ms
        self.stats = stats
        self.deferred: dict[GroupStream, list[str]] = {}
        self._stop = stop
        self._client = group.client  # scripts, and commands parsed alike by redis-py
        self._raw = group.raw  # the raw client of the server holding a key

    # -- before the handler ---------------------------------------------------------------

    async def prepare(
        self, stream: GroupStream, entries: list[RawEntry], *, redelivered: bool
    ) -> list[Delivery]:
        """Acknowledge deleted entries, resolve the others, park exhausted redeliveries."""
        gone = [entry_id.decode() for entry_id, fields in entries if fields is None]
        if gone:
            await self.ack(stream, gone)
            self.stats.deleted += len(gone)
        live = [(entry_id, fields) for entry_id, fields in entries if fields is not None]
        deliveries = await self._resolve(stream, live)
        if redelivered:
            deliveries = await self._park_exhausted(stream, deliveries)
        return deliveries

    async def _resolve(
        self, stream: GroupStream, entries: list[tuple[bytes, dict[bytes, bytes] | list[bytes]]]
    ) -> list[Delivery]:
        ids = [entry_id.decode() for entry_id, _ in entries]
        try:
            pointers = [self._pointer(stream, entry) for entry in entries]
            events = await self.group.store.resolve(pointers)
        except StoredDataError:
            return [await self._resolve_one(stream, entry) for entry in entries]
        return [Delivery(i, p, e) for i, p, e in zip(ids, pointers, events, strict=True)]

    def _pointer(
        self, stream: GroupStream, entry: tuple[bytes, dict[bytes, bytes] | list[bytes]]
    ) -> Pointer:
        schema, (entry_id, fields) = self.group.store.keys, entry
        if stream.retry:
            return pointer_from_fields(
                schema, stream.partition, stream.key, entry_id.decode(), fields
            )
        (pointer,) = parse_pointers(schema, stream.partition, [entry])
        return pointer

    async def _resolve_one(
        self, stream: GroupStream, entry: tuple[bytes, dict[bytes, bytes] | list[bytes]]
    ) -> Delivery:
        # An entry or an event that cannot be decoded fails its deliveries like a handler
        # error, so it ends up in the dead-letter stream instead of blocking the group.
        entry_id, pointer = entry[0].decode(), None
        try:
            pointer = self._pointer(stream, entry)
            (recorded,) = await self.group.store.resolve([pointer])
        except StoredDataError as exc:
            return Delivery(entry_id, pointer, None, exc)
        return Delivery(entry_id, pointer, recorded)

    async def _park_exhausted(
        self, stream: GroupStream, deliveries: list[Delivery]
    ) -> list[Delivery]:
        """Park redelivered entries that already had ``max_deliveries`` tries, untried.

        A handler that kills its process never raises: without this check such an
        event would be claimed and crash workers forever.
        """
        client = self._raw.for_key(stream.key)
        try:
            async with client.pipeline(transaction=False) as pipe:
                for delivery in deliveries:
                    entry_id = delivery.entry_id
                    command(pipe, "XPENDING", stream.key, self.group.name, entry_id, entry_id, 1)
                replies = await pipe.execute()
        except redis.ResponseError as exc:
            raise_if_denied(exc, client, keys=(stream.key,), command="xpending")
            raise
        keep = []
        for delivery, reply in zip(deliveries, replies, strict=True):
            pending = parse_pending_entries(reply)
            if not pending or pending[0].consumer != self.consumer:
                self.stats.lost += 1
            elif pending[0].deliveries > self.max_deliveries:
                error = ErrorInfo(
                    "DeliveriesExhausted",
                    f"delivered {pending[0].deliveries - 1} times without an acknowledgement "
                    "(the handler never finished: worker killed, or slower than claim_idle)",
                    "",
                )
                await self._park(stream, delivery, error, self.max_deliveries + 1)
            else:
                keep.append(delivery)
        return keep

    # -- the handler ----------------------------------------------------------------------

    async def deliver_all(self, batches: Sequence[Batch], *, defer_acks: bool = False) -> None:
        """Handle the batches; acknowledge the handled entries now, or with the next read
        (``defer_acks``: the main loop, whose next command is always a read or a flush)."""
        held = [(stream, delivery) for stream, deliveries in batches for delivery in deliveries]
        handled: dict[GroupStream, list[str]] = {}
        try:
            await self._deliver_held(held, handled)
        except BaseException:
            # the handled entries are done: acknowledge what we can, report the failure
            with contextlib.suppress(redis.RedisError):
                await self._flush_acks(handled)
            raise
        for stream, entry_ids in handled.items():
            if defer_acks and not stream.retry:  # retries are acked and deleted at once
                self.deferred.setdefault(stream, []).extend(entry_ids)
            else:
                await self._flush_acks({stream: entry_ids})

    async def _deliver_held(
        self, held: list[tuple[GroupStream, Delivery]], handled: dict[GroupStream, list[str]]
    ) -> None:
        """Run the handler on each held entry; the ones it handled are collected for one
        XACK per stream, sent before any lease renewal and at the end of the read."""
        renewed = time.monotonic()
        skip: set[tuple[str, str]] = set()
        for index, (stream, delivery) in enumerate(held):
            if self._stop.is_set():
                await self._flush_acks(handled)
                await self._lease_held(held[index:], "release")
                return
            if (time.monotonic() - renewed) * 1000 > self.claim_idle_ms / 3:
                # Entries waiting their turn (in every stream of the read) must not look
                # abandoned to other workers; handled ones are acknowledged first.
                await self._flush_acks(handled)
                waiting = [(s, d) for s, d in held[index:] if (s.key, d.entry_id) not in skip]
                owned = await self._lease_held(waiting, "renew")
                skip.update(
                    (s.key, d.entry_id) for s, d in waiting if (s.key, d.entry_id) not in owned
                )
                renewed = time.monotonic()
            if (stream.key, delivery.entry_id) in skip:
                self.stats.lost += 1
                continue
            if await self._deliver(stream, delivery):
                handled.setdefault(stream, []).append(delivery.entry_id)

    async def _deliver(self, stream: GroupStream, delivery: Delivery) -> bool:
        """Run the handler; True if it returned (the caller acknowledges the entry)."""
        try:
            if delivery.recorded is None:
                raise cast(Exception, delivery.error)
            await self.handler(delivery.recorded)
        except Exception as exc:  # noqa: BLE001 - any handler failure is a failed delivery
            self.stats.failed += 1
            await self._park(stream, delivery, describe_error(exc), self.max_deliveries)
            return False
        return True

    # -- acknowledgements -----------------------------------------------------------------

    async def flush_deferred(self) -> None:
        """Acknowledge the handled entries whose XACK was waiting for the next read."""
        deferred, self.deferred = self.deferred, {}
        try:
            await self._flush_acks(deferred)
        except BaseException:
            for stream, entry_ids in deferred.items():  # the ones not sent yet
                self.deferred.setdefault(stream, []).extend(entry_ids)
            raise

    async def _flush_acks(self, handled: dict[GroupStream, list[str]]) -> None:
        while handled:
            stream, entry_ids = handled.popitem()
            await self.ack(stream, entry_ids)
            self.stats.processed += len(entry_ids)  # handled *and* acknowledged

    async def ack(self, stream: GroupStream, entry_ids: list[str]) -> None:
        """Acknowledge entries of ``stream`` (retry entries are deleted too)."""
        try:
            if not stream.retry:
                await self._client.xack(stream.key, self.group.name, *entry_ids)
                return
            # Retry entries are deleted once handled: the stream's length minus its pending
            # entries is then exactly what is left to deliver (lag without XINFO's lag).
            async with self._raw.for_key(stream.key).pipeline(transaction=True) as pipe:
                pipe.xack(stream.key, self.group.name, *entry_ids)
                pipe.xdel(stream.key, *entry_ids)
                await pipe.execute()
        except redis.ResponseError as exc:
            raise_if_denied(exc, self._client, keys=(stream.key,), command="xack")
            raise

    # -- dead letters and leases ----------------------------------------------------------

    async def _park(
        self, stream: GroupStream, delivery: Delivery, error: ErrorInfo, threshold: int
    ) -> None:
        """Dead-letter the entry if its delivery count reached ``threshold`` (atomically)."""
        fields: list[str | int] = []
        if delivery.pointer is not None:  # else the letter points to its source entry only
            for name, value in pointer_fields(delivery.pointer).items():
                fields += [name, value]
        fields += dead_letter_fields(error, self.consumer, now_ms())
        keys = (stream.key, self.group.store.keys.dead_letters(stream.partition, self.group.name))
        args = [
            self.group.name,
            self.consumer,
            delivery.entry_id,
            threshold,
            int(stream.retry),
            *fields,
        ]
        script = self.group.fail_script
        try:
            outcome = await script(keys=keys, args=args)
        except redis.ResponseError as exc:
            raise_if_denied(exc, self._client, keys=keys, script=("group_fail", script))
            raise
        if outcome[0] == b"dead":
            self.stats.dead_lettered += 1
        elif outcome[0] == b"lost":
            self.stats.lost += 1

    async def _lease_held(
        self, held: Sequence[tuple[GroupStream, Delivery]], mode: str
    ) -> set[tuple[str, str]]:
        """Renew or release held entries, stream by stream; the (stream, id) still owned."""
        by_stream: dict[GroupStream, list[str]] = {}
        for stream, delivery in held:
            by_stream.setdefault(stream, []).append(delivery.entry_id)
        return {
            (stream.key, entry_id)
            for stream, entry_ids in by_stream.items()
            for entry_id in await self._lease(stream, entry_ids, mode)
        }

    async def _lease(self, stream: GroupStream, entry_ids: list[str], mode: str) -> list[str]:
        if not entry_ids:
            return []
        args: list[str | int] = [self.group.name, self.consumer, mode, RELEASED_IDLE_MS, *entry_ids]
        script = self.group.lease_script
        try:
            owned: Any = await script(keys=(stream.key,), args=args)
        except redis.ResponseError as exc:
            raise_if_denied(exc, self._client, keys=(stream.key,), script=("group_lease", script))
            raise
        return [entry_id.decode() for entry_id in owned]
