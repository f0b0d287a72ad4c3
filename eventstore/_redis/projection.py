"""``Projection``: a read model kept in Redis, fed by a catch-up reading of the logs.

::

    balances = Projection(store, "balances", version=1)

    @balances.on(Deposited)
    def _deposited(event: Deposited, ctx: ProjectionContext) -> None:
        ctx.pipe.hincrby(ctx.key("by_account"), ctx.record.aggregate_id, event.amount)

    balances.start()                       # background thread (or run() in the foreground)
    balances.wait_until_caught_up(5.0)
    store.client.hget(balances.active_key("by_account"), "acc-1")

Each page of events is applied as ONE MULTI/EXEC holding the handlers' writes and the
projection's checkpoint (the field ``projection:<name>:v<version>`` of each partition's
``{ns:pN}:ckpt`` hash, which is also what the safe trim point of the logs reads). Model
and checkpoint therefore move together: a projection killed at any moment resumes where
its model is, and each event takes effect once.

Each commit WATCHes the version's lease key: starting a runner takes the version over, and
a runner that lost it stops with ``ProjectionTakenOver`` before committing anything, so two
runners never both apply an event. Recording a failure and rewinding the checkpoint after a
failed EXEC are guarded the same way.

A handler that raises stops the projection with a ``ProjectionError`` naming the event;
the writes of the events before it are committed with their checkpoint, the failed event
is not skipped. The failure is also recorded in Redis (``last_error()``, read by
``eventstore projections status`` from any process) until a commit takes the projection
past the failed event. Blue/green: run ``version=2`` next to version 1 (its keys and checkpoint
are its own), ``promote()`` it once caught up, then ``retire()`` version 1.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

import attrs
import redis
from redis.client import Pipeline
from redis.cluster import RedisCluster

from aggregates import DomainEvent
from eventstore._core.backoff import Backoff
from eventstore._core.checkpoint import Checkpoint
from eventstore._core.codec import now_ms, version_of_id
from eventstore._core.errors import ConfigurationError, ProjectionError
from eventstore._core.groups import describe_error
from eventstore._core.keys import validate_name
from eventstore._core.log import FollowedPage
from eventstore._core.projections import ProjectionFailure, failure_fields, parse_failure
from eventstore._core.records import RecordedEvent
from eventstore._redis.connections import close_dedicated, dedicated_client
from eventstore._redis.follower import RETRYABLE, LogFollower
from eventstore._redis.lease import Lease
from eventstore._redis.stored import stored_int

if TYPE_CHECKING:
    from eventstore._redis.store import EventStore

__all__ = ["Projection", "ProjectionContext"]

E = TypeVar("E", bound=DomainEvent)
Handler = Callable[[E, "ProjectionContext"], None]

_COMMAND_NUMBER = re.compile(r"Command # (\d+)")


@attrs.define
class _Batch:
    """One page being applied: the MULTI pipeline and which commands belong to which event."""

    pipe: Pipeline
    partition: int
    committed: int
    handled: int
    marks: list[tuple[int, RecordedEvent]] = attrs.field(factory=list)


class ProjectionContext:
    """What a handler gets next to the event: the record and where to write the model.

    Write through ``pipe`` (queued in the page's MULTI, committed with the checkpoint).
    Read through ``client``: it first commits the earlier events' writes, so reads see
    them; read before writing in a handler (reading after this event queued writes would
    not see them, so it raises).
    """

    def __init__(
        self, projection: Projection, batch: _Batch, record: RecordedEvent, mark: int
    ) -> None:
        self.projection = projection
        self.record = record
        self._batch = batch
        self._mark = mark

    @property
    def pipe(self) -> Pipeline:
        """The transaction the read model writes go into."""
        return self._batch.pipe

    def key(self, *parts: str) -> str:
        """A read model key of this projection version, e.g. ``ctx.key("by_email")``."""
        return self.projection.key(*parts)

    @property
    def client(self) -> redis.Redis:
        """A client for reading the model, after committing the earlier events' writes."""
        if len(self._batch.pipe.command_stack) > self._mark:
            raise RuntimeError(
                f"projection {self.projection.name!r}: read the model before queuing writes "
                f"in a handler ({self.record.event_type} at position {self.record.position})"
            )
        self.projection._commit(self._batch, self._batch.handled)
        self._mark = 0
        self._batch.marks.append((0, self.record))  # the commit cleared the marks
        return self.projection.store.client


class Projection:
    """A named, versioned read model built by handlers per event type.

    ``page_size`` events at most go into one MULTI. ``aggregate_types`` narrows what is
    read. See the module docstring for an example.
    """

    def __init__(
        self,
        store: EventStore,
        name: str,
        *,
        version: int = 1,
        aggregate_types: Collection[str] | None = None,
        page_size: int = 200,
        block_ms: int = 1000,
        reconnect_for: float = 60.0,
    ) -> None:
        validate_name("projection", name)
        if isinstance(store.client, RedisCluster):
            raise ConfigurationError(
                f"projection {name!r}: a projection commits its read model and checkpoint in "
                "one MULTI, which Redis Cluster cannot run across slots; not supported on a "
                "cluster yet (use store.subscribe and store the checkpoint yourself)"
            )
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValueError(f"projection version must be an int >= 1, got {version!r}")
        self.store = store
        self.name = name
        self.version = version
        self.aggregate_types = aggregate_types
        self.page_size = page_size
        self.block_ms = block_ms
        self.reconnect_for = reconnect_for
        self.error: BaseException | None = None
        self._handlers: dict[str, Callable[[Any, ProjectionContext], None]] = {}
        self._stopped = threading.Event()
        self._progress = threading.Condition()
        self._committed = Checkpoint.start(store.partitions)
        self._thread: threading.Thread | None = None
        self._lease = Lease(store.client, self.lease_key, name, version)
        self._failed: tuple[int, int] | None = None  # (partition, position) of last_error
        self._commits = 0  # successful commits so far: run() tells outages apart with it

    # -- declaring ------------------------------------------------------------------------

    def on(self, event_class: type[E]) -> Callable[[Handler[E]], Handler[E]]:
        """Register the decorated function as the handler of ``event_class``."""

        def register(handler: Handler[E]) -> Handler[E]:
            if event_class.event_type in self._handlers:
                raise ValueError(
                    f"projection {self.name!r} already handles {event_class.event_type}"
                )
            self._handlers[event_class.event_type] = handler
            return handler

        return register

    @property
    def checkpoint_field(self) -> str:
        """This version's field in every partition's ``{ns:pN}:ckpt`` hash."""
        return f"projection:{self.name}:v{self.version}"

    def key(self, *parts: str) -> str:
        """A read model key of this version."""
        return self.store.keys.read_model(self.name, self.version, *parts)

    # -- reading state --------------------------------------------------------------------

    def checkpoint(self) -> Checkpoint:
        """The committed checkpoint, read from Redis (the start if never run)."""
        keys = self.store.keys
        hashes = [keys.checkpoints(partition) for partition in range(keys.partitions)]
        with self.store.client.pipeline(transaction=False) as pipe:
            for key in hashes:
                pipe.hget(key, self.checkpoint_field)
            stored = pipe.execute(raise_on_error=False)
        client, field = self.store.client, self.checkpoint_field
        return Checkpoint(
            tuple(
                stored_int(client, k, field, raw, "hash")
                for k, raw in zip(hashes, stored, strict=True)
            )
        )

    @property
    def error_key(self) -> str:
        """The hash recording this version's last failure (see ``last_error``)."""
        return self.store.keys.projection_error(self.name, self.version)

    def last_error(self) -> ProjectionFailure | None:
        """Why this version last stopped, read from Redis; ``None`` if it is past it.

        Any process sees it: a runner records it when a handler (or a read model write)
        fails, and deletes it in the commit that takes the checkpoint past the failed
        event, or when the version is retired.
        """
        fields = cast(dict[bytes, bytes], self.store.client.hgetall(self.error_key))
        return parse_failure(self.error_key, self.name, self.version, fields)

    def active_version(self) -> int | None:
        """The version promoted to serve reads, if any."""
        raw = self.store.client.hget(self.store.keys.projections, self.name)
        return int(raw) if raw is not None else None

    def active_key(self, *parts: str) -> str:
        """A read model key of the promoted version (this one if none is promoted yet)."""
        version = self.active_version() or self.version
        return self.store.keys.read_model(self.name, version, *parts)

    def promote(self) -> None:
        """Make this version the one readers use (blue/green switch)."""
        self.store.client.hset(self.store.keys.projections, self.name, self.version)

    def retire(self) -> int:
        """Delete this (not promoted) version's model keys, checkpoint and last error.

        Returns how many model keys were deleted.
        """
        if self.active_version() == self.version:
            raise ConfigurationError(
                f"projection {self.name!r} version {self.version} serves reads: "
                "promote another version before retiring it"
            )
        client, keys = self.store.client, self.store.keys
        # The lease goes first: a runner still applying this version commits under it
        # (WATCH), so once it is gone no commit can recreate model keys or re-register
        # the checkpoint after they are deleted below.
        client.delete(self.lease_key)
        doomed = [self.key(), *client.scan_iter(match=f"{self.key()}:*", count=500)]
        deleted = int(client.unlink(*doomed))
        for partition in range(keys.partitions):
            client.hdel(keys.checkpoints(partition), self.checkpoint_field)
        client.delete(self.error_key)
        return deleted

    # -- running --------------------------------------------------------------------------

    def run(self, *, until_caught_up: bool = False) -> None:
        """Apply events in this thread until ``stop()`` (or once caught up, if asked).

        Reconnects with backoff after a lost connection, resuming from the committed
        checkpoint; a handler error raises ``ProjectionError``. Starting a runner takes the
        projection version over: one that was already running raises
        ``ProjectionTakenOver`` at its next commit, without committing anything.
        """
        self._lease.renew()
        backoff = Backoff()
        while not self._stopped.is_set():
            try:
                self._follow(live=not until_caught_up)
                return
            except RETRYABLE:
                # reconnect_for bounds one outage: a commit since the last failure means
                # the link came back, so this failure starts a new outage (and backoff).
                if backoff.failed(self._commits) > self.reconnect_for:
                    raise
                self._stopped.wait(backoff.next_delay())

    def start(self) -> Self:
        """Run in a background thread; a failure is kept in ``error``."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError(f"projection {self.name!r} is already running")
        self._stopped.clear()
        self.error = None
        self._thread = threading.Thread(
            target=self._run_in_thread, name=f"projection-{self.name}-v{self.version}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop (thread-safe); waits for the background thread, if any, to finish."""
        self._stopped.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        """True while the background thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def wait_until_caught_up(self, timeout: float | None = None) -> bool:
        """Wait until every event appended before this call is applied; False on timeout.

        Raises the ``ProjectionError`` that stopped the background thread, if one did.
        """
        head = self._last_entries()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._progress:
            while True:
                if self.error is not None:
                    raise self.error
                if _reached(self._committed, head):
                    return True
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._progress.wait(remaining if remaining is not None else 1.0)

    def _last_entries(self) -> Checkpoint:
        """The last log entry of each partition at or below the current head.

        Not the head itself: entries a trim removed can never be applied, and a version
        started after a trim that emptied a log would otherwise never be caught up.
        """
        keys = self.store.keys
        with self.store.client.pipeline(transaction=False) as pipe:
            for partition, position in enumerate(self.store.head().positions):
                pipe.xrevrange(keys.log(partition), f"0-{position}", "-", count=1)
            replies = pipe.execute()
        return Checkpoint(tuple(version_of_id(last[0][0]) if last else 0 for last in replies))

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run_in_thread(self) -> None:
        try:
            self.run()
        except Exception as exc:  # noqa: BLE001 - kept for wait_until_caught_up and the owner
            with self._progress:
                self.error = exc
                self._progress.notify_all()

    def _follow(self, *, live: bool) -> None:
        client = dedicated_client(self.store.client, block_seconds=self.block_ms / 1000)
        try:
            self._lease.take()
            self._set_committed(self.checkpoint())
            self._load_failure()
            follower = LogFollower(
                self.store.keys,
                client,
                self._committed,
                event_types=frozenset(self._handlers),
                aggregate_types=self.aggregate_types,
                page_size=self.page_size,
                block_ms=self.block_ms,
                live=live,
                reconnect_for=self.reconnect_for,
                stopped=self._stopped,
            )
            for page in follower.pages():
                self._apply(page)
        finally:
            close_dedicated(client)

    @property
    def lease_key(self) -> str:
        """The key holding the token of the runner that applies this version."""
        return self.store.keys.projection_lease(self.name, self.version)

    def _load_failure(self) -> None:
        failure = self.last_error()
        if failure is None:
            self._failed = None
        elif self._committed.position(failure.partition) >= failure.position:
            self.store.client.delete(self.error_key)  # passed meanwhile (e.g. moved by hand)
            self._failed = None
        else:
            self._failed = (failure.partition, failure.position)

    # -- applying a page ------------------------------------------------------------------

    def _apply(self, page: FollowedPage) -> None:
        start = self._committed.position(page.partition)
        with self.store.client.pipeline(transaction=True) as pipe:
            batch = _Batch(pipe, page.partition, committed=start, handled=start)
            for record in page.events:
                self._handle(batch, record)
            self._commit(batch, page.last_position)

    def _handle(self, batch: _Batch, record: RecordedEvent) -> None:
        mark = len(batch.pipe.command_stack)
        context = ProjectionContext(self, batch, record, mark)
        batch.marks.append((mark, record))
        try:
            self._handlers[record.event_type](record.event, context)
        except RETRYABLE:
            # The projection's own link failed (e.g. a read through ctx.client), not the
            # handler: run() reconnects and handles the event again from the checkpoint.
            raise
        except Exception as exc:
            # Drop this event's queued writes, keep the earlier events' ones: the checkpoint
            # stops right before the failed event, which is handled again after a restart.
            del batch.pipe.command_stack[context._mark :]
            batch.marks.pop()
            self._commit(batch, batch.handled)
            raise self._fail(record, f"handler raised {exc!r}", exc) from exc
        batch.handled = record.position

    def _commit(self, batch: _Batch, position: int) -> None:
        if position <= batch.committed and not batch.pipe.command_stack:
            return
        queued = list(batch.pipe.command_stack)
        batch.pipe.command_stack.clear()
        # under the lease: if another runner takes over before EXEC, nothing applies
        with self._lease.transaction() as tx:
            for args, options in queued:
                tx.execute_command(*args, **options)  # type: ignore[no-untyped-call]
            tx.hset(self.store.keys.checkpoints(batch.partition), self.checkpoint_field, position)
            passes = self._passes_failure(batch.partition, position)
            if passes:
                tx.delete(self.error_key)  # with the checkpoint that gets past the failure
            results = self._execute(tx, batch)
        failed = next((i for i, r in enumerate(results) if isinstance(r, Exception)), None)
        if failed is not None:
            self._rewind_after_failed_exec(batch, failed, results[failed])
        if passes:
            self._failed = None
        batch.committed, batch.marks = position, []
        self._commits += 1
        self._set_committed(self._committed.advance(batch.partition, position))

    def _execute(self, tx: Pipeline, batch: _Batch) -> list[Any]:
        try:
            return self._lease.execute(tx, raise_on_error=False)
        except redis.ResponseError as exc:  # refused while queuing: EXEC applied nothing
            raise self._fail(_failed_record(batch, _command_index(exc)), str(exc), exc) from exc

    def _rewind_after_failed_exec(self, batch: _Batch, index: int, exc: Exception) -> None:
        # EXEC does not roll back: the other commands were applied. Put the checkpoint back
        # before the failed event so it is never skipped; its writes (and the later events'
        # of this page) will be applied again after the fix, so keep such handlers idempotent.
        record = _failed_record(batch, index)
        keys = self.store.keys
        before = max(batch.committed, record.position - 1)
        with self._lease.transaction() as tx:
            tx.hset(keys.checkpoints(batch.partition), self.checkpoint_field, before)
            self._lease.execute(tx)
        raise self._fail(record, f"Redis refused a read model write: {exc}", exc) from exc

    def _set_committed(self, checkpoint: Checkpoint) -> None:
        with self._progress:
            self._committed = checkpoint
            self._progress.notify_all()

    def _passes_failure(self, partition: int, position: int) -> bool:
        if self._failed is None:
            return False
        failed_partition, failed_position = self._failed
        return partition == failed_partition and position >= failed_position

    def _fail(self, record: RecordedEvent, reason: str, cause: Exception) -> ProjectionError:
        """The error to raise, once recorded in Redis for other processes to see."""
        error = self._error(record, reason)
        fields: dict[Any, Any] = failure_fields(error, describe_error(cause), now_ms())

        try:
            with self._lease.transaction() as tx:
                tx.delete(self.error_key)
                tx.hset(self.error_key, mapping=fields)
                # failed on its first event, a version has no checkpoint yet: register it
                # at 0, so status and list show it (and log trims keep what it still needs)
                tx.hsetnx(self.store.keys.checkpoints(record.partition), self.checkpoint_field, 0)
                self._lease.execute(tx)
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


def _reached(checkpoint: Checkpoint, head: Checkpoint) -> bool:
    return all(c >= h for c, h in zip(checkpoint.positions, head.positions, strict=True))


def _command_index(exc: Exception) -> int:
    match = _COMMAND_NUMBER.search(str(exc))
    return int(match.group(1)) - 1 if match else 0


def _failed_record(batch: _Batch, index: int) -> RecordedEvent:
    """The event whose handler queued command ``index`` of the transaction."""
    owner = batch.marks[0][1] if batch.marks else None
    for mark, record in batch.marks:
        if mark <= index:
            owner = record
    if owner is None:
        raise RuntimeError("a failed command belongs to no event (checkpoint write failed)")
    return owner
