# unasync: generates the sync module of the same name
"""``AsyncConsumerGroup``: competing consumers over every partition log, with dead letters.

A group is one Redis consumer group per partition on two streams: the partition log and
the group's retry stream (replayed dead letters). Its workers (``group.worker``) share
the events: each is delivered to one worker, acknowledged after its handler returns,
retried when it raises, parked in the dead-letter stream after ``max_deliveries``.

Everything a group does touches one partition's keys at a time (one hash tag, so one
slot of a Redis Cluster), except a worker's read on a single server, which reads every
partition's streams in one XREADGROUP. On a cluster each partition's commands go to the
node owning its slot (see ``AsyncRawClients``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, cast

import attrs
import redis.asyncio as redis
from redis.asyncio.client import Pipeline

from eventstore._async.clients import load_script
from eventstore._async.io import Handler
from eventstore._async.stored import raise_if_wrong_type, stored_int
from eventstore._core.errors import DeadLetterNotFound, GroupNotFound, StoredDataError
from eventstore._core.groups import (
    DeadLetter,
    GroupInfo,
    PartitionStatus,
    PendingEntry,
    dead_letter_pointer,
    parse_dead_letter,
    parse_first_position,
    parse_group_info,
    parse_pending_count,
    parse_pending_entries,
    partition_status,
    split_dead_letter_id,
)
from eventstore._core.keys import validate_name
from eventstore._core.records import RecordedEvent
from eventstore._redis.permissions import raise_if_denied

if TYPE_CHECKING:
    from eventstore._async.store import AsyncEventStore
    from eventstore._async.worker import AsyncWorker

__all__ = ["AsyncConsumerGroup", "GroupStream", "Start", "command"]

Start = Literal["beginning", "end"]
REPLAY_CHUNK = 500
"""Dead letters moved per script call: bounded so one call never stalls the server long."""


def command(client: redis.Redis | Pipeline, *args: str | int) -> Any:
    """Send a command as is (redis-py's ``execute_command`` is untyped, or loosely typed)."""
    return cast(Any, client).execute_command(*args)


@attrs.frozen
class GroupStream:
    """One stream a group reads: a partition log, or the group's retry stream there."""

    key: str
    partition: int
    retry: bool


class AsyncConsumerGroup:
    """A named consumer group over every partition log of a store.

    ::

        group = await store.consumer_group("fulfillment", start="beginning")
        worker = group.worker("w1", handle, max_deliveries=3)
        await worker.run(stop_when_idle=True)
        await group.lag(), await group.pending(), await group.dead_letters()

    Opening a group that exists already is fine: it is adopted as it is (``start``
    only matters the first time).
    """

    def __init__(self, store: AsyncEventStore, name: str, *, start: Start = "beginning") -> None:
        """A group object without I/O: ``open`` (or ``store.consumer_group``) creates it."""
        validate_name("consumer group", name)
        if start not in ("beginning", "end"):
            raise ValueError(f"start must be 'beginning' or 'end', got {start!r}")
        self.store = store
        self.name = name
        # the store's raw clients: on a cluster their node pools close with the store
        self.raw = store._raw
        # Commands whose replies need no raw parsing, and the scripts: the raw client of
        # the one server, or the store's cluster client (which follows moved slots).
        self.client = store.client if self.raw.is_cluster else self.raw.for_key("")
        self.fail_script = load_script(self.client, "group_fail")
        self.lease_script = load_script(self.client, "group_lease")
        self.replay_script = load_script(self.client, "group_replay")
        self.streams = tuple(
            GroupStream(key, partition, retry)
            for retry in (False, True)
            for partition in range(store.partitions)
            for key in [self._key(partition, retry=retry)]
        )

    @classmethod
    async def open(
        cls, store: AsyncEventStore, name: str, *, start: Start = "beginning"
    ) -> AsyncConsumerGroup:
        """The group ``name`` on ``store``, created if needed (see ``store.consumer_group``)."""
        group = cls(store, name, start=start)
        await group._create(start)
        return group

    @property
    def is_cluster(self) -> bool:
        """Whether the group's partitions live on several nodes of a Redis Cluster."""
        return self.raw.is_cluster

    def partition_streams(self, partition: int) -> tuple[GroupStream, GroupStream]:
        """The log and the retry stream of one partition (one hash tag, one slot)."""
        count = self.store.partitions
        return self.streams[partition], self.streams[count + partition]

    def _key(self, partition: int, *, retry: bool) -> str:
        keys = self.store.keys
        return keys.retry(partition, self.name) if retry else keys.log(partition)

    async def _create(self, start: Start) -> None:
        for stream in self.streams:
            first = "0" if stream.retry or start == "beginning" else "$"
            client = self.raw.for_key(stream.key)
            try:
                await command(client, "XGROUP", "CREATE", stream.key, self.name, first, "MKSTREAM")
            except redis.ResponseError as exc:
                if not str(exc).startswith("BUSYGROUP"):
                    raise_if_denied(exc, client, keys=(stream.key,), command="xgroup|create")
                    await raise_if_wrong_type(exc, client, {stream.key: "stream"})
                    raise

    def worker(
        self,
        consumer: str,
        handler: Handler[RecordedEvent],
        *,
        max_deliveries: int = 5,
        claim_idle: timedelta = timedelta(seconds=30),
        batch_size: int = 10,
        block: timedelta = timedelta(seconds=1),
        reconnect_for: float = 60.0,
    ) -> AsyncWorker:
        """A worker named ``consumer`` calling ``handler`` for each event it is given.

        The handler returning acknowledges the event; raising counts a failed delivery,
        retried after ``claim_idle``, dead-lettered at ``max_deliveries``. Entries a
        worker holds longer than ``claim_idle`` (it died, or stalled) are claimed by the
        others, so ``claim_idle`` must exceed the slowest handler call. A lost server is
        retried with backoff; after ``reconnect_for`` seconds of one continuous outage
        ``run`` raises ``WorkerDisconnected`` (its events stay pending).
        """
        from eventstore._async.worker import AsyncWorker

        return AsyncWorker(
            self,
            consumer,
            handler,
            max_deliveries=max_deliveries,
            claim_idle=claim_idle,
            batch_size=batch_size,
            block=block,
            reconnect_for=reconnect_for,
        )

    # -- lag and pending ------------------------------------------------------------------

    async def status(self) -> list[PartitionStatus]:
        """Lag, pending and dead letters per partition, each from one consistent read."""
        return [
            await self._partition_status(partition) for partition in range(self.store.partitions)
        ]

    async def lag(self) -> int:
        """Events not yet delivered to any worker of the group, over all partitions."""
        return sum(status.lag for status in await self.status())

    async def pending(self) -> int:
        """Events delivered to a worker and not acknowledged yet, over all partitions."""
        return sum(status.pending for status in await self.status())

    async def pending_entries(self, partition: int, *, retry: bool = False) -> list[PendingEntry]:
        """Every pending entry of one partition's log (or retry stream), oldest first."""
        key = self._key(partition, retry=retry)
        client = self.raw.for_key(key)
        try:
            reply = await command(client, "XPENDING", key, self.name, "-", "+", 2**31 - 1)
        except redis.ResponseError as exc:
            raise_if_denied(exc, client, keys=(key,), command="xpending")
            raise
        return parse_pending_entries(cast(Sequence[Any], reply))

    async def _partition_status(self, partition: int) -> PartitionStatus:
        keys = self.store.keys
        log, retry = keys.log(partition), keys.retry(partition, self.name)
        client = self.raw.for_key(log)
        async with client.pipeline(transaction=True) as pipe:
            pipe.get(keys.position(partition))
            command(pipe, "XINFO", "GROUPS", log)
            pipe.xlen(retry)
            command(pipe, "XPENDING", retry, self.name)
            pipe.xlen(keys.dead_letters(partition, self.name))
            pipe.xrange(log, count=1)  # where a trim left the log: below it is no lag
            replies = await pipe.execute(raise_on_error=False)
        for reply in replies:  # a refusal is reported as such, not as a missing group
            if isinstance(reply, redis.ResponseError):
                raise_if_denied(reply, client, keys=(log, retry), command="xinfo|groups")
        position, groups, retry_length, retry_pending, dead, first = replies
        log_group = self._group_info(groups, log)
        if isinstance(retry_pending, redis.ResponseError):
            raise GroupNotFound(self.name, retry) from retry_pending
        position_key = keys.position(partition)
        last_position = await stored_int(client, position_key, "value", position)
        return partition_status(
            partition,
            first_position=parse_first_position(first, last_position),
            last_position=last_position,
            log_group=log_group,
            retry_length=int(retry_length),
            retry_pending=parse_pending_count(retry_pending),
            dead_letters=int(dead),
        )

    def _group_info(self, reply: Sequence[Any] | Exception, stream: str) -> GroupInfo:
        if isinstance(reply, Exception):
            raise reply
        info = parse_group_info(reply, self.name)
        if info is None:
            raise GroupNotFound(self.name, stream)
        return info

    # -- dead letters ---------------------------------------------------------------------

    async def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        """The group's dead letters, oldest first in each partition (at most ``limit``)."""
        found: list[DeadLetter] = []
        for partition in range(self.store.partitions):
            left = None if limit is None else limit - len(found)
            if left is not None and left <= 0:
                break
            key = self.store.keys.dead_letters(partition, self.name)
            entries = await self.client.xrange(key, count=left)
            found += await self._dead_letters(partition, key, cast(Sequence[Any], entries))
        return found

    async def dead_letter(self, dead_letter_id: str) -> DeadLetter:
        """One dead letter by its id (``DeadLetterNotFound`` if it is not there)."""
        partition, entry_id = self._locate(dead_letter_id)
        key = self.store.keys.dead_letters(partition, self.name)
        entries = cast(Sequence[Any], await self.client.xrange(key, entry_id, entry_id))
        if not entries:
            raise DeadLetterNotFound(self.name, dead_letter_id)
        (letter,) = await self._dead_letters(partition, key, entries)
        return letter

    async def _dead_letters(
        self, partition: int, key: str, entries: Sequence[Any]
    ) -> list[DeadLetter]:
        parsed = [(entry[0], _field_map(entry[1])) for entry in entries]
        schema = self.store.keys
        try:
            pointers = [dead_letter_pointer(schema, partition, key, entry) for entry in parsed]
            events = await self.store.resolve(pointers)
        except StoredDataError:  # one of them cannot be read: list it, and the others
            return [await self._dead_letter(partition, key, entry) for entry in parsed]
        return [
            parse_dead_letter(partition, entry, recorded)
            for entry, recorded in zip(parsed, events, strict=True)
        ]

    async def _dead_letter(
        self, partition: int, key: str, entry: tuple[bytes, dict[bytes, bytes]]
    ) -> DeadLetter:
        if b"k" not in entry[1]:  # parked as it was read: a malformed entry, no pointer
            source = entry[1].get(b"source", b"?").decode(errors="replace")
            unreadable = f"entry {source} could not be read as a pointer to an event (see error)"
            return parse_dead_letter(partition, entry, None, unreadable=unreadable)
        try:
            pointer = dead_letter_pointer(self.store.keys, partition, key, entry)
            (recorded,) = await self.store.resolve([pointer])
        except StoredDataError as exc:
            return parse_dead_letter(partition, entry, None, unreadable=str(exc))
        return parse_dead_letter(partition, entry, recorded)

    async def replay_dead_letters(self, ids: Iterable[str] | None = None) -> int:
        """Send dead letters (all, or those ``ids``) back to the group; returns how many.

        Each goes to the group's retry stream, which its workers read next to the log,
        and starts again with a fresh delivery count.
        """
        moved = 0
        by_partition = await self._by_partition(ids)
        for partition, entry_ids in by_partition.items():
            keys = (
                self.store.keys.dead_letters(partition, self.name),
                self.store.keys.retry(partition, self.name),
            )
            for start in range(0, len(entry_ids), REPLAY_CHUNK):
                chunk = entry_ids[start : start + REPLAY_CHUNK]
                try:
                    moved += int(await self.replay_script(keys=keys, args=chunk))
                except redis.ResponseError as exc:
                    script = ("group_replay", self.replay_script)
                    raise_if_denied(exc, self.client, keys=keys, script=script)
                    raise
        return moved

    async def discard_dead_letters(self, ids: Iterable[str] | None = None) -> int:
        """Delete dead letters (all, or those ``ids``) for good; returns how many."""
        removed = 0
        by_partition = await self._by_partition(ids)
        for partition, entry_ids in by_partition.items():
            key = self.store.keys.dead_letters(partition, self.name)
            for start in range(0, len(entry_ids), REPLAY_CHUNK):
                chunk = entry_ids[start : start + REPLAY_CHUNK]
                removed += int(await self.client.xdel(key, *chunk))
        return removed

    def _locate(self, dead_letter_id: str) -> tuple[int, str]:
        partition, entry_id = split_dead_letter_id(dead_letter_id)
        if partition >= self.store.partitions:
            raise DeadLetterNotFound(self.name, dead_letter_id)
        return partition, entry_id

    async def _by_partition(self, ids: Iterable[str] | None) -> dict[int, list[str]]:
        grouped: dict[int, list[str]] = {}
        if ids is not None:
            for dead_letter_id in ids:
                partition, entry_id = self._locate(dead_letter_id)
                grouped.setdefault(partition, []).append(entry_id)
            return grouped
        for partition in range(self.store.partitions):
            key = self.store.keys.dead_letters(partition, self.name)
            entries = cast(Sequence[Any], await self.client.xrange(key))
            if entries:
                grouped[partition] = [_text(entry[0]) for entry in entries]
        return grouped

    async def destroy(self) -> None:
        """Delete the group from every log, with its retry and dead-letter streams."""
        for stream in self.streams:
            await command(self.raw.for_key(stream.key), "XGROUP", "DESTROY", stream.key, self.name)
        for partition in range(self.store.partitions):
            await self.client.delete(
                self.store.keys.retry(partition, self.name),
                self.store.keys.dead_letters(partition, self.name),
            )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _field_map(raw: Any) -> dict[bytes, bytes]:
    if isinstance(raw, dict):
        return raw
    return dict(zip(raw[::2], raw[1::2], strict=True))
