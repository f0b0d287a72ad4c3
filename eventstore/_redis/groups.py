"""``ConsumerGroup``: competing consumers over every partition log, with dead letters.

A group is one Redis consumer group per partition on two streams: the partition log and
the group's retry stream (replayed dead letters). Its workers (``group.worker``) share
the events: each is delivered to one worker, acknowledged after its handler returns,
retried when it raises, parked in the dead-letter stream after ``max_deliveries``.

Everything a group does touches one partition's keys at a time (one hash tag, so one
slot of a Redis Cluster), except a worker's read on a single server, which reads every
partition's streams in one XREADGROUP. On a cluster each partition's commands go to the
node owning its slot (see ``RawClients``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, cast

import attrs
import redis

from eventstore._core.errors import DeadLetterNotFound, GroupNotFound
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
from eventstore._redis.clients import load_script
from eventstore._redis.shards import RawClients
from eventstore._redis.stored import raise_if_wrong_type, stored_int  # issue 6

if TYPE_CHECKING:
    from eventstore._redis.store import EventStore
    from eventstore._redis.worker import Worker

__all__ = ["ConsumerGroup", "GroupStream", "command"]

Start = Literal["beginning", "end"]
Handler = Callable[[RecordedEvent], object]
REPLAY_CHUNK = 500
"""Dead letters moved per script call: bounded so one call never stalls the server long."""


def command(client: redis.Redis | redis.client.Pipeline, *args: str | int) -> Any:
    """Send a command as is (redis-py's ``execute_command`` is untyped)."""
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


@attrs.frozen
class GroupStream:
    """One stream a group reads: a partition log, or the group's retry stream there."""

    key: str
    partition: int
    retry: bool


class ConsumerGroup:
    """A named consumer group over every partition log of a store.

    ::

        group = store.consumer_group("fulfillment", start="beginning")
        worker = group.worker("w1", handle, max_deliveries=3)
        worker.run(stop_when_idle=True)
        group.lag(), group.pending(), group.dead_letters()

    Creating a group that exists already is fine: it is adopted as it is (``start``
    only matters the first time).
    """

    def __init__(self, store: EventStore, name: str, *, start: Start = "beginning") -> None:
        validate_name("consumer group", name)
        if start not in ("beginning", "end"):
            raise ValueError(f"start must be 'beginning' or 'end', got {start!r}")
        self.store = store
        self.name = name
        self.raw = RawClients(store.client)
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
        self._start = start

    @classmethod
    def open(cls, store: EventStore, name: str, *, start: Start = "beginning") -> ConsumerGroup:
        """The group ``name`` on ``store``, created if needed (see ``store.consumer_group``)."""
        group = cls(store, name, start=start)
        group._create(start)
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

    def _create(self, start: Start) -> None:
        for stream in self.streams:
            first = "0" if stream.retry or start == "beginning" else "$"
            try:
                command(
                    self.raw.for_key(stream.key),
                    "XGROUP",
                    "CREATE",
                    stream.key,
                    self.name,
                    first,
                    "MKSTREAM",
                )
            except redis.ResponseError as exc:
                if not str(exc).startswith("BUSYGROUP"):
                    raise_if_wrong_type(exc, self.raw.for_key(stream.key), {stream.key: "stream"})
                    raise

    def worker(
        self,
        consumer: str,
        handler: Handler,
        *,
        max_deliveries: int = 5,
        claim_idle: timedelta = timedelta(seconds=30),
        batch_size: int = 10,
        block: timedelta = timedelta(seconds=1),
        reconnect_for: float = 60.0,
    ) -> Worker:
        """A worker named ``consumer`` calling ``handler`` for each event it is given.

        The handler returning acknowledges the event; raising counts a failed delivery,
        retried after ``claim_idle``, dead-lettered at ``max_deliveries``. Entries a
        worker holds longer than ``claim_idle`` (it died, or stalled) are claimed by the
        others, so ``claim_idle`` must exceed the slowest handler call. A lost server is
        retried with backoff; after ``reconnect_for`` seconds of one continuous outage
        ``run`` raises ``WorkerDisconnected`` (its events stay pending).
        """
        from eventstore._redis.worker import Worker

        return Worker(
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

    def status(self) -> list[PartitionStatus]:
        """Lag, pending and dead letters per partition, each from one consistent read."""
        return [self._partition_status(partition) for partition in range(self.store.partitions)]

    def lag(self) -> int:
        """Events not yet delivered to any worker of the group, over all partitions."""
        return sum(status.lag for status in self.status())

    def pending(self) -> int:
        """Events delivered to a worker and not acknowledged yet, over all partitions."""
        return sum(status.pending for status in self.status())

    def pending_entries(self, partition: int, *, retry: bool = False) -> list[PendingEntry]:
        """Every pending entry of one partition's log (or retry stream), oldest first."""
        key = self._key(partition, retry=retry)
        reply = command(self.raw.for_key(key), "XPENDING", key, self.name, "-", "+", 2**31 - 1)
        return parse_pending_entries(cast(Sequence[Any], reply))

    def _partition_status(self, partition: int) -> PartitionStatus:
        keys = self.store.keys
        log, retry = keys.log(partition), keys.retry(partition, self.name)
        with self.raw.for_key(log).pipeline(transaction=True) as pipe:
            pipe.get(keys.position(partition))
            command(pipe, "XINFO", "GROUPS", log)
            pipe.xlen(retry)
            command(pipe, "XPENDING", retry, self.name)
            pipe.xlen(keys.dead_letters(partition, self.name))
            pipe.xrange(log, count=1)  # where a trim left the log: below it is no lag
            replies = pipe.execute(raise_on_error=False)
        position, groups, retry_length, retry_pending, dead, first = replies
        log_group = self._group_info(groups, log)
        if isinstance(retry_pending, redis.ResponseError):
            raise GroupNotFound(self.name, retry) from retry_pending
        position_key = keys.position(partition)
        last_position = stored_int(self.raw.for_key(log), position_key, "value", position)
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

    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        """The group's dead letters, oldest first in each partition (at most ``limit``)."""
        found: list[DeadLetter] = []
        for partition in range(self.store.partitions):
            left = None if limit is None else limit - len(found)
            if left is not None and left <= 0:
                break
            key = self.store.keys.dead_letters(partition, self.name)
            entries = self.client.xrange(key, count=left)
            found += self._dead_letters(partition, key, cast(Sequence[Any], entries))
        return found

    def dead_letter(self, dead_letter_id: str) -> DeadLetter:
        """One dead letter by its id (``DeadLetterNotFound`` if it is not there)."""
        partition, entry_id = self._locate(dead_letter_id)
        key = self.store.keys.dead_letters(partition, self.name)
        entries = cast(Sequence[Any], self.client.xrange(key, entry_id, entry_id))
        if not entries:
            raise DeadLetterNotFound(self.name, dead_letter_id)
        return self._dead_letters(partition, key, entries)[0]

    def _dead_letters(self, partition: int, key: str, entries: Sequence[Any]) -> list[DeadLetter]:
        parsed = [(entry[0], _field_map(entry[1])) for entry in entries]
        schema = self.store.keys
        pointers = [dead_letter_pointer(schema, partition, key, entry) for entry in parsed]
        events = self.store.resolve(pointers)
        return [
            parse_dead_letter(partition, entry, recorded)
            for entry, recorded in zip(parsed, events, strict=True)
        ]

    def replay_dead_letters(self, ids: Iterable[str] | None = None) -> int:
        """Send dead letters (all, or those ``ids``) back to the group; returns how many.

        Each goes to the group's retry stream, which its workers read next to the log,
        and starts again with a fresh delivery count.
        """
        moved = 0
        for partition, entry_ids in self._by_partition(ids).items():
            keys = (
                self.store.keys.dead_letters(partition, self.name),
                self.store.keys.retry(partition, self.name),
            )
            for start in range(0, len(entry_ids), REPLAY_CHUNK):
                chunk = entry_ids[start : start + REPLAY_CHUNK]
                moved += int(self.replay_script(keys=keys, args=chunk))
        return moved

    def discard_dead_letters(self, ids: Iterable[str] | None = None) -> int:
        """Delete dead letters (all, or those ``ids``) for good; returns how many."""
        removed = 0
        for partition, entry_ids in self._by_partition(ids).items():
            key = self.store.keys.dead_letters(partition, self.name)
            for start in range(0, len(entry_ids), REPLAY_CHUNK):
                removed += int(self.client.xdel(key, *entry_ids[start : start + REPLAY_CHUNK]))
        return removed

    def _locate(self, dead_letter_id: str) -> tuple[int, str]:
        partition, entry_id = split_dead_letter_id(dead_letter_id)
        if partition >= self.store.partitions:
            raise DeadLetterNotFound(self.name, dead_letter_id)
        return partition, entry_id

    def _by_partition(self, ids: Iterable[str] | None) -> dict[int, list[str]]:
        grouped: dict[int, list[str]] = {}
        if ids is not None:
            for dead_letter_id in ids:
                partition, entry_id = self._locate(dead_letter_id)
                grouped.setdefault(partition, []).append(entry_id)
            return grouped
        for partition in range(self.store.partitions):
            key = self.store.keys.dead_letters(partition, self.name)
            entries = cast(Sequence[Any], self.client.xrange(key))
            if entries:
                grouped[partition] = [_text(entry[0]) for entry in entries]
        return grouped

    def destroy(self) -> None:
        """Delete the group from every log, with its retry and dead-letter streams."""
        for stream in self.streams:
            command(self.raw.for_key(stream.key), "XGROUP", "DESTROY", stream.key, self.name)
        for partition in range(self.store.partitions):
            self.client.delete(
                self.store.keys.retry(partition, self.name),
                self.store.keys.dead_letters(partition, self.name),
            )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _field_map(raw: Any) -> dict[bytes, bytes]:
    if isinstance(raw, dict):
        return raw
    return dict(zip(raw[::2], raw[1::2], strict=True))
