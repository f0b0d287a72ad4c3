"""``Worker``: one competing consumer of a ``ConsumerGroup``.

Its loop: on start, take back its own pending entries (XREADGROUP id ``0``); then, in
turn, claim entries idle longer than ``claim_idle`` (XAUTOCLAIM: their holder died or
stalled, or their handler failed and they are due for a retry) and read new ones
(XREADGROUP ``>``, blocking a short while). Each entry is acknowledged only after the
handler returned (the entries of one read together, one XACK per stream, so a crash
re-delivers at most that read's handled entries); a failure leaves it pending, so it
comes back after ``claim_idle``, until its own delivery count reaches ``max_deliveries``
and it is parked.

A lost connection (or a restarting server) does not end ``run``: the worker backs off
(jittered, capped) and starts over by draining its own pending entries, which still hold
whatever it had read but not acknowledged (the event in hand included, if its XACK
failed). It gives up with ``WorkerDisconnected`` after ``reconnect_for`` seconds of one
continuous outage.

On a single server one XREADGROUP reads every partition's log and retry stream, and the
blocking read waits on all of them. On a Redis Cluster the partitions live in different
slots: the worker reads each partition with its own (non-blocking) XREADGROUP on the node
owning it, and when every partition is empty it sleeps on the live notifications (sharded
Pub/Sub, as catch-up subscriptions do) for at most ``block``. A notification only wakes it
up: a lost one costs at most ``block`` of latency, never an event. A failover (dead node,
moved slot) is an outage like any other: the worker re-reads the slot map and carries on.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

import attrs
import redis

from eventstore._core.backoff import Backoff
from eventstore._core.codec import now_ms
from eventstore._core.errors import ConfigurationError, StoredDataError, WorkerDisconnected
from eventstore._core.groups import (
    ClaimReply,
    ErrorInfo,
    RawEntry,
    dead_letter_fields,
    describe_error,
    parse_claim_reply,
    parse_pending_entries,
    parse_read_reply,
    pointer_fields,
    pointer_from_fields,
)
from eventstore._core.keys import validate_name
from eventstore._core.log import Pointer, parse_pointers
from eventstore._core.notifications import LiveSelection
from eventstore._core.records import RecordedEvent
from eventstore._redis.batch import send_batch
from eventstore._redis.groups import command
from eventstore._redis.live import LiveFeed

if TYPE_CHECKING:
    from eventstore._redis.groups import ConsumerGroup, GroupStream

__all__ = ["Worker", "WorkerStats"]

# Redelivered entries (own pending on start, claimed ones) are taken one at a time: a
# delivery raises an entry's count even if the worker dies before trying it, so a
# poison event that kills workers must not drag a batch of healthy ones to the limit.
REDELIVERY_BATCH = 1

RELEASED_IDLE_MS = 86_400_000
"""Idle time given to entries released on shutdown: far past any ``claim_idle``."""


@attrs.define
class WorkerStats:
    """Counts of what a worker did (since it was created).

    ``processed``: handled and acknowledged; ``failed``: handler raised; ``dead_lettered``:
    parked; ``claimed``: taken over from idle holders; ``deleted``: entries gone from the
    stream before they could be handled (acknowledged and skipped); ``lost``: entries
    another worker claimed while this one still held them.
    """

    processed: int = 0
    failed: int = 0
    dead_lettered: int = 0
    claimed: int = 0
    deleted: int = 0
    lost: int = 0


@attrs.frozen
class _Delivery:
    entry_id: str
    pointer: Pointer
    recorded: RecordedEvent | None
    error: Exception | None = None


class Worker:
    """A consumer of a group: ``run()`` handles events until ``stop()`` (or idle).

    Made by ``ConsumerGroup.worker``. ``run`` blocks; to run in a thread::

        thread = threading.Thread(target=worker.run)
        thread.start()
        ...
        worker.stop()        # from any thread: finish the event in hand, then return
        thread.join()

    Graceful stop: the event in hand is finished and acknowledged; the rest of the batch
    is released untried (delivery count restored) for any worker to take. A killed
    worker loses nothing: its entries stay pending and are claimed after ``claim_idle``.
    A lost server is waited out for ``reconnect_for`` seconds (see the module docstring).
    """

    def __init__(
        self,
        group: ConsumerGroup,
        consumer: str,
        handler: Callable[[RecordedEvent], object],
        *,
        max_deliveries: int,
        claim_idle: timedelta,
        batch_size: int,
        block: timedelta,
        reconnect_for: float = 60.0,
    ) -> None:
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
        self._client = group.client  # scripts, and commands parsed alike by redis-py
        self._raw = group.raw  # the raw client of the server holding a key
        self._retryable = group.raw.retryable
        # one read covers every stream on a single server; one partition's on a cluster
        self._read_sets: list[tuple[GroupStream, ...]] = (
            [group.partition_streams(p) for p in range(group.store.partitions)]
            if group.is_cluster
            else [group.streams]
        )
        self._hints: LiveFeed | None = None
        # handled log entries whose XACK rides with the next read (one round trip less a
        # batch); anything else this worker does first sends them on their own
        self._deferred: dict[GroupStream, list[str]] = {}
        self._stop = threading.Event()
        self._last_claim = 0.0
        self._reads = 0
        self._check_socket_timeout()

    def _check_socket_timeout(self) -> None:
        if self.group.is_cluster:
            return  # nothing blocks in a command on a cluster: it waits on Pub/Sub
        timeout = self._client.connection_pool.connection_kwargs.get("socket_timeout")
        if timeout is not None and float(timeout) * 1000 <= self.block_ms:
            raise ConfigurationError(
                f"socket_timeout {timeout}s must exceed the worker's block time "
                f"{self.block_ms} ms: a timed-out blocking read is retried by redis-py"
            )

    def stop(self) -> None:
        """Ask ``run`` to return after the event in hand (safe from any thread)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """Whether ``stop()`` was called and ``run`` has not returned yet."""
        return self._stop.is_set()

    def run(self, *, stop_when_idle: bool = False) -> WorkerStats:
        """Handle events until ``stop()``; with ``stop_when_idle``, also return once the
        group has nothing undelivered and nothing pending (retries included).

        Survives a lost server: reconnects with backoff and carries on; raises
        ``WorkerDisconnected`` after ``reconnect_for`` seconds of one continuous outage.
        """
        outage = Backoff()
        try:
            while not self._stop.is_set():
                try:
                    self._work(stop_when_idle=stop_when_idle)
                    break
                except self._retryable as exc:
                    self._back_off(outage, exc)
                    self._raw.refresh()  # a failover moves slots to another node
        finally:
            self._stop.clear()
            if self._hints is not None:
                self._hints.close()
                self._hints = None
        return self.stats

    def _work(self, *, stop_when_idle: bool) -> None:
        # Draining first also takes back, after a reconnect, what the lost link left
        # pending here: unacknowledged entries, and entries a lost read reply delivered.
        self._drain_own_pending()
        while not self._stop.is_set():
            worked = self._claim() if self._claim_due() else False
            if self._read_new(block=False) or worked:
                continue
            if stop_when_idle and self._group_idle():
                return
            self._read_new(block=True)  # wait for new events, or for claims to fall due
        self._flush_deferred()  # stopping: what was handled is acknowledged

    def _back_off(self, outage: Backoff, exc: Exception) -> None:
        """Wait before reconnecting (``stop()`` cuts it short); give up past the limit."""
        if outage.failed(self._reads) > self.reconnect_for:
            raise WorkerDisconnected(
                self.group.name, self.consumer, self.reconnect_for, f"{exc}"
            ) from exc
        self._stop.wait(outage.next_delay())

    # -- reading --------------------------------------------------------------------------

    def _xreadgroup(
        self, ids: Sequence[str], streams: Sequence[GroupStream], *, block: bool, count: int
    ) -> Any:
        args: list[str | int] = ["GROUP", self.group.name, self.consumer, "COUNT", count]
        if block:
            args += ["BLOCK", self.block_ms]
        args += ["STREAMS", *(stream.key for stream in streams), *ids]
        deferred = self._deferred
        acks = [(stream, deferred.pop(stream)) for stream in streams if stream in deferred]
        commands: list[tuple[str | int, ...]] = [
            ("XACK", stream.key, self.group.name, *entry_ids) for stream, entry_ids in acks
        ]
        try:  # the acknowledgements first, in the same round trip
            reply = send_batch(
                self._raw.for_key(streams[0].key), [*commands, ("XREADGROUP", *args)]
            )
        except BaseException:
            deferred.update(acks)  # sent again before anything else (or lost with the
            raise  # link: then the entries are handled again, at least once)
        self.stats.processed += sum(len(entry_ids) for _, entry_ids in acks)
        self._reads += 1  # the link works: a later failure is a new outage
        return reply[-1]

    def _drain_own_pending(self) -> None:
        """Take back what this consumer held when it last stopped (or died)."""
        self._flush_deferred()
        for read_set in self._read_sets:
            self._drain_own_pending_of(read_set)

    def _drain_own_pending_of(self, read_set: Sequence[GroupStream]) -> None:
        after = {stream.key: "0" for stream in read_set}
        while after and not self._stop.is_set():
            streams = [s for s in read_set if s.key in after]
            read = parse_read_reply(
                self._xreadgroup(list(after.values()), streams, block=False, count=REDELIVERY_BATCH)
            )
            batches = []
            for stream in streams:
                entries = read.get(stream.key, [])
                if not entries:
                    del after[stream.key]
                    continue
                after[stream.key] = entries[-1][0].decode()
                batches.append((stream, self._prepare(stream, entries, redelivered=True)))
            self._deliver_all(batches)

    def _read_new(self, *, block: bool) -> bool:
        if block and self.group.is_cluster:
            self._wait_for_hint()  # the next round reads every partition again
            return False
        batches = []
        for streams in self._read_sets:
            read = parse_read_reply(
                self._xreadgroup([">"] * len(streams), streams, block=block, count=self.batch_size)
            )
            batches += [
                (stream, self._prepare(stream, read[stream.key], redelivered=False))
                for stream in streams
                if read.get(stream.key)
            ]
        # One round holds entries of several streams: deliver them as one batch, so the
        # entries of later partitions are renewed while earlier ones are handled (else they
        # look abandoned and another worker claims them while this one still will run them).
        self._deliver_all(batches, defer_acks=True)
        return bool(batches)

    def _wait_for_hint(self) -> None:
        """Sleep until a live notification (any type) or ``block`` passes (cluster only)."""
        self._flush_deferred()
        if self._hints is None:
            self._hints = LiveFeed(self.group.store, LiveSelection.of(None, None, None))
        self._hints.wait_for_any(self.block_ms / 1000)

    def _claim_due(self) -> bool:
        return (time.monotonic() - self._last_claim) * 1000 >= self.claim_idle_ms / 2

    def _claim(self) -> bool:
        """Take over entries idle longer than ``claim_idle``, from any consumer."""
        self._flush_deferred()
        self._last_claim = time.monotonic()
        claimed = False
        for stream in self.group.streams:
            cursor = "0-0"
            while not self._stop.is_set():
                reply = self._autoclaim(stream, cursor)
                self.stats.deleted += len(reply.deleted)  # 7.x dropped them from the PEL
                if reply.has_holes:
                    self._ack_deleted(stream, cursor, reply.cursor)
                if reply.entries:
                    claimed = True
                    self.stats.claimed += len(reply.entries)
                    deliveries = self._prepare(stream, list(reply.entries), redelivered=True)
                    self._deliver_all([(stream, deliveries)])
                cursor = reply.cursor
                if reply.done:
                    break
        return claimed

    def _autoclaim(self, stream: GroupStream, cursor: str) -> ClaimReply:
        name, idle = self.group.name, self.claim_idle_ms
        args = (stream.key, name, self.consumer, idle, cursor, "COUNT", REDELIVERY_BATCH)
        return parse_claim_reply(command(self._raw.for_key(stream.key), "XAUTOCLAIM", *args))

    def _ack_deleted(self, stream: GroupStream, start: str, end: str) -> None:
        """Redis 6.2 claims deleted entries as nils without ids: find and acknowledge them.

        They are the entries this consumer now holds in the scanned range whose id no
        longer exists in the stream.
        """
        high = "+" if end == "0-0" else f"({end}"
        client = self._raw.for_key(stream.key)
        reply = command(
            client,
            "XPENDING",
            stream.key,
            self.group.name,
            start,
            high,
            2**31 - 1,
            self.consumer,
        )
        for entry in parse_pending_entries(cast(Sequence[Any], reply)):
            if not client.xrange(stream.key, entry.entry_id, entry.entry_id):
                client.xack(stream.key, self.group.name, entry.entry_id)
                self.stats.deleted += 1

    def _group_idle(self) -> bool:
        self._flush_deferred()  # else they count as pending
        return all(s.lag == 0 and s.pending == 0 for s in self.group.status())

    # -- handling -------------------------------------------------------------------------

    def _prepare(
        self, stream: GroupStream, entries: list[RawEntry], *, redelivered: bool
    ) -> list[_Delivery]:
        """Acknowledge deleted entries, resolve the others, park exhausted redeliveries."""
        gone = [entry_id.decode() for entry_id, fields in entries if fields is None]
        if gone:
            self._ack(stream, gone)
            self.stats.deleted += len(gone)
        live = [(entry_id, fields) for entry_id, fields in entries if fields is not None]
        deliveries = self._resolve(stream, live)
        if redelivered:
            deliveries = self._park_exhausted(stream, deliveries)
        return deliveries

    def _resolve(
        self, stream: GroupStream, entries: list[tuple[bytes, dict[bytes, bytes] | list[bytes]]]
    ) -> list[_Delivery]:
        schema = self.group.store.keys
        if stream.retry:
            pointers = [
                pointer_from_fields(schema, stream.partition, stream.key, i.decode(), f)
                for i, f in entries
            ]
        else:
            pointers = parse_pointers(schema, stream.partition, entries)
        ids = [entry_id.decode() for entry_id, _ in entries]
        try:
            events = self.group.store.resolve(pointers)
        except StoredDataError:
            return [self._resolve_one(i, p) for i, p in zip(ids, pointers, strict=True)]
        return [_Delivery(i, p, e) for i, p, e in zip(ids, pointers, events, strict=True)]

    def _resolve_one(self, entry_id: str, pointer: Pointer) -> _Delivery:
        # An event that cannot be decoded fails its deliveries like a handler error,
        # so it ends up in the dead-letter stream instead of blocking the batch.
        try:
            return _Delivery(entry_id, pointer, self.group.store.resolve([pointer])[0])
        except StoredDataError as exc:
            return _Delivery(entry_id, pointer, None, exc)

    def _park_exhausted(self, stream: GroupStream, deliveries: list[_Delivery]) -> list[_Delivery]:
        """Park redelivered entries that already had ``max_deliveries`` tries, untried.

        A handler that kills its process never raises: without this check such an
        event would be claimed and crash workers forever.
        """
        with self._raw.for_key(stream.key).pipeline(transaction=False) as pipe:
            for delivery in deliveries:
                entry_id = delivery.entry_id
                command(pipe, "XPENDING", stream.key, self.group.name, entry_id, entry_id, 1)
            replies = pipe.execute()
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
                self._park(stream, delivery, error, self.max_deliveries + 1)
            else:
                keep.append(delivery)
        return keep

    def _deliver_all(
        self, batches: Sequence[tuple[GroupStream, list[_Delivery]]], *, defer_acks: bool = False
    ) -> None:
        """Handle the batches; acknowledge the handled entries now, or with the next read
        (``defer_acks``: the main loop, whose next command is always a read or a flush)."""
        held = [(stream, delivery) for stream, deliveries in batches for delivery in deliveries]
        handled: dict[GroupStream, list[str]] = {}
        try:
            self._deliver_held(held, handled)
        except BaseException:
            # the handled entries are done: acknowledge what we can, report the failure
            with contextlib.suppress(redis.RedisError):
                self._flush_acks(handled)
            raise
        for stream, entry_ids in handled.items():
            if defer_acks and not stream.retry:  # retries are acked and deleted at once
                self._deferred.setdefault(stream, []).extend(entry_ids)
            else:
                self._flush_acks({stream: entry_ids})

    def _deliver_held(
        self, held: list[tuple[GroupStream, _Delivery]], handled: dict[GroupStream, list[str]]
    ) -> None:
        """Run the handler on each held entry; the ones it handled are collected for one
        XACK per stream, sent before any lease renewal and at the end of the read."""
        renewed = time.monotonic()
        skip: set[tuple[str, str]] = set()
        for index, (stream, delivery) in enumerate(held):
            if self._stop.is_set():
                self._flush_acks(handled)
                self._lease_held(held[index:], "release")
                return
            if (time.monotonic() - renewed) * 1000 > self.claim_idle_ms / 3:
                # Entries waiting their turn (in every stream of the read) must not look
                # abandoned to other workers; handled ones are acknowledged first.
                self._flush_acks(handled)
                waiting = [(s, d) for s, d in held[index:] if (s.key, d.entry_id) not in skip]
                owned = self._lease_held(waiting, "renew")
                skip.update(
                    (s.key, d.entry_id) for s, d in waiting if (s.key, d.entry_id) not in owned
                )
                renewed = time.monotonic()
            if (stream.key, delivery.entry_id) in skip:
                self.stats.lost += 1
                continue
            if self._deliver(stream, delivery):
                handled.setdefault(stream, []).append(delivery.entry_id)

    def _flush_deferred(self) -> None:
        deferred, self._deferred = self._deferred, {}
        try:
            self._flush_acks(deferred)
        except BaseException:
            for stream, entry_ids in deferred.items():  # the ones not sent yet
                self._deferred.setdefault(stream, []).extend(entry_ids)
            raise

    def _flush_acks(self, handled: dict[GroupStream, list[str]]) -> None:
        while handled:
            stream, entry_ids = handled.popitem()
            self._ack(stream, entry_ids)
            self.stats.processed += len(entry_ids)  # handled *and* acknowledged

    def _lease_held(
        self, held: Sequence[tuple[GroupStream, _Delivery]], mode: str
    ) -> set[tuple[str, str]]:
        """Renew or release held entries, stream by stream; the (stream, id) still owned."""
        by_stream: dict[GroupStream, list[str]] = {}
        for stream, delivery in held:
            by_stream.setdefault(stream, []).append(delivery.entry_id)
        return {
            (stream.key, entry_id)
            for stream, entry_ids in by_stream.items()
            for entry_id in self._lease(stream, entry_ids, mode)
        }

    def _deliver(self, stream: GroupStream, delivery: _Delivery) -> bool:
        """Run the handler; True if it returned (the caller acknowledges the entry)."""
        try:
            if delivery.recorded is None:
                raise cast(Exception, delivery.error)
            self.handler(delivery.recorded)
        except Exception as exc:  # noqa: BLE001 - any handler failure is a failed delivery
            self.stats.failed += 1
            self._park(stream, delivery, describe_error(exc), self.max_deliveries)
            return False
        return True

    # -- writes ---------------------------------------------------------------------------

    def _ack(self, stream: GroupStream, entry_ids: list[str]) -> None:
        if not stream.retry:
            self._client.xack(stream.key, self.group.name, *entry_ids)
            return
        # Retry entries are deleted once handled: the stream's length minus its pending
        # entries is then exactly what is left to deliver (lag without XINFO's lag).
        with self._raw.for_key(stream.key).pipeline(transaction=True) as pipe:
            pipe.xack(stream.key, self.group.name, *entry_ids)
            pipe.xdel(stream.key, *entry_ids)
            pipe.execute()

    def _park(
        self, stream: GroupStream, delivery: _Delivery, error: ErrorInfo, threshold: int
    ) -> None:
        """Dead-letter the entry if its delivery count reached ``threshold`` (atomically)."""
        fields: list[str | int] = []
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
        outcome = self.group.fail_script(keys=keys, args=args)
        if outcome[0] == b"dead":
            self.stats.dead_lettered += 1
        elif outcome[0] == b"lost":
            self.stats.lost += 1

    def _lease(self, stream: GroupStream, entry_ids: list[str], mode: str) -> list[str]:
        if not entry_ids:
            return []
        args: list[str | int] = [self.group.name, self.consumer, mode, RELEASED_IDLE_MS, *entry_ids]
        owned = self.group.lease_script(keys=(stream.key,), args=args)
        return [entry_id.decode() for entry_id in owned]
