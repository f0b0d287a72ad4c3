"""``EventStore``: appends, reads and loads against Redis, sending what the core builds."""

from __future__ import annotations

import atexit
import itertools
import json
import os
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any, Self, cast

import attrs
import redis
from redis.cluster import RedisCluster

from aggregates import DomainEvent
from eventstore._core.checkpoint import FROM_NOW, After, Checkpoint  # issue 3
from eventstore._core.codec import (
    encode_batch,
    now_ms,
    stored_version,
    version_of_id,
)
from eventstore._core.errors import ConfigurationError, InvalidEvent
from eventstore._core.expected import ExpectedVersion
from eventstore._core.groups import TrimResult, parse_trim_reply  # issue 4
from eventstore._core.keys import KeySchema, validate_name
from eventstore._core.limits import DEFAULT_LIMITS, Limits, check_batch  # issue 6
from eventstore._core.log import LogPage, Pointer, parse_pointers
from eventstore._core.notifications import LiveChannels, LiveSelection, LiveStats  # issue 3
from eventstore._core.records import AppendResult, Entries, NewEvent, RecordedEvent, Snapshot
from eventstore._core.replies import stored_count
from eventstore._core.scripts import (
    LoadReply,
    append_call,
    load_call,
    parse_entries,
    parse_load,
    parse_typed,
    snapshot_from_hash,
)
from eventstore._redis.batch import send_batch
from eventstore._redis.clients import (
    load_hot_script,
    load_script,
    open_client,
    release_cluster_nodes,
)
from eventstore._redis.durability import (
    Durability,
    check_durability,
    run_append,
    supports_waitaof,
)
from eventstore._redis.embedded import EmbeddedServer
from eventstore._redis.failover import through_failover
from eventstore._redis.follower import LogFollower, fetch_events  # issue 3
from eventstore._redis.groups import ConsumerGroup, Start  # issue 4
from eventstore._redis.live import LiveFeed, live_stats  # issue 3
from eventstore._redis.permissions import raise_if_denied  # issue 6
from eventstore._redis.server import ServerInfo, check_server, server_infos
from eventstore._redis.shards import RawClients
from eventstore._redis.stored import raise_if_wrong_type, refusals, stored_int  # issue 6
from eventstore._redis.subscription import CatchUpSubscription  # issue 3

__all__ = ["Durability", "EventStore", "load_script"]


class EventStore:
    """An event store in one Redis namespace.

    ::

        store = EventStore.from_url("redis://127.0.0.1:6379/0", namespace="bank")
        store.append("Account", "acc-1", [Deposited(amount=10)], expected_version=0)
        for recorded in store.read("Account", "acc-1"):
            print(recorded.version, recorded.event)

    Open with ``from_url`` or ``embedded``. The number of partitions is fixed when the
    namespace is created; opening an existing namespace adopts it.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        namespace: str = "es",
        partitions: int | None = None,
        durability: Durability | None = None,
        notify: bool = True,
        check: bool = True,
        limits: Limits | None = None,
    ) -> None:
        validate_name("namespace", namespace)
        self.client = client
        self.namespace = namespace
        self.durability = durability or Durability()
        self.notify = notify
        self.limits = limits or DEFAULT_LIMITS
        # isinstance against redis-py's client classes goes through typing's Protocol check
        # (~0.5 us): asked once here, not on every append
        self._is_cluster = isinstance(client, RedisCluster)
        # on a cluster every primary holds history: each one must be safe
        self.servers: list[ServerInfo] = server_infos(client)
        self.server: ServerInfo = self.servers[0]
        if check:
            for info in self.servers:
                check_server(info)
        check_durability(self.durability, self.servers)
        self._waitaof = supports_waitaof(self.servers)
        self._durabilities_checked = {self.durability}
        self.keys = KeySchema(namespace, self._adopt_partitions(partitions))
        # sharded notifications (SPUBLISH) need a cluster whose every primary has them
        sharded = self.is_cluster and all(info.has_sharded_pubsub for info in self.servers)
        self.live_channels = LiveChannels(self.keys, sharded=sharded)
        self._append = load_hot_script(client, "append")
        self._snapshot = load_script(client, "snapshot")
        self._raw = RawClients(client)  # reads parsed by the core, without reply callbacks
        self._trim = load_script(client, "trim")  # issue 4
        self._embedded: EmbeddedServer | None = None
        self._client_name = ""

    # -- opening --------------------------------------------------------------------------

    @classmethod
    def from_url(
        cls,
        url: str,
        namespace: str = "es",
        partitions: int | None = None,
        *,
        durability: Durability | None = None,
        notify: bool = True,
        cluster: bool = False,
        limits: Limits | None = None,
        **redis_options: Any,
    ) -> Self:
        """Connect to ``redis://``, ``rediss://`` or ``unix://`` and open ``namespace``.

        ``cluster=True`` talks to a Redis Cluster through redis-py's ``RedisCluster``: the
        URL names any one node (``redis://host:port``, or ``rediss://`` with TLS), the
        client finds the others. ``redis+cluster://host:port`` means the same. Each
        partition's keys share one hash tag (one slot), so ``partitions`` spreads the
        work over the primaries: use a few partitions per primary.

        TLS: ``rediss://`` with ``ssl_ca_certs=``, ``ssl_certfile=``, ``ssl_keyfile=`` (or
        the same names as URL query parameters). ``limits`` bounds event and batch sizes.
        """
        client = open_client(url, cluster=cluster, **redis_options)
        try:
            return cls(
                client,
                namespace=namespace,
                partitions=partitions,
                durability=durability,
                notify=notify,
                limits=limits,
            )
        except BaseException:
            _close_client(client)  # a store that failed to open leaves no connection behind
            raise

    @classmethod
    def embedded(
        cls,
        path: str | os.PathLike[str] = ".eventstore",
        namespace: str = "es",
        partitions: int | None = None,
        *,
        appendfsync: str = "everysec",
        durability: Durability | None = None,
        notify: bool = True,
        limits: Limits | None = None,
    ) -> Self:
        """Open a store on the bundled redis-server (extra ``embedded``), data under ``path``.

        The server starts if none runs there yet (AOF on, so data survives restarts) and is
        shut down when the last store using it closes (or at interpreter exit).
        """
        server = EmbeddedServer(path, appendfsync=appendfsync)
        server.ensure_running()
        name = f"eventstore-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        store = cls(
            open_client(server.url, client_name=name),
            namespace=namespace,
            partitions=partitions,
            durability=durability,
            notify=notify,
            limits=limits,
        )
        store._embedded, store._client_name = server, name
        atexit.register(store.close)
        return store

    def close(self) -> None:
        """Release connections (and stop an embedded server nobody else uses)."""
        self._append.release()
        _close_client(self.client)
        if self._embedded is not None:
            server, self._embedded = self._embedded, None
            server.shutdown_if_unused(self._client_name)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def partitions(self) -> int:
        return self.keys.partitions

    # -- writing --------------------------------------------------------------------------

    def append(
        self,
        aggregate_type: str,
        aggregate_id: str,
        events: Sequence[DomainEvent],
        expected_version: int | ExpectedVersion = ExpectedVersion.ANY,
        *,
        event_ids: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        snapshot: Snapshot | None = None,
        durability: Durability | None = None,
    ) -> AppendResult:
        """Append ``events`` atomically; all or nothing, checked against ``expected_version``.

        Pass ``event_ids`` to make a re-send idempotent: a batch whose ids are already at
        those versions returns the original positions and writes nothing. ``durability``
        overrides the store's policy for this append (``None``: the store's).
        """
        validate_name("aggregate type", aggregate_type)
        encoded = encode_batch(
            self.keys.stream(aggregate_type, aggregate_id),
            events,
            event_ids=event_ids,
            metadata=metadata,
            correlation_id=correlation_id,
            causation_id=causation_id,
        )
        return self.append_encoded(
            aggregate_type,
            aggregate_id,
            encoded,
            expected_version,
            snapshot=snapshot,
            durability=durability,
        )

    def append_encoded(
        self,
        aggregate_type: str,
        aggregate_id: str,
        events: Sequence[NewEvent],
        expected_version: int | ExpectedVersion = ExpectedVersion.ANY,
        *,
        snapshot: Snapshot | None = None,
        durability: Durability | None = None,
    ) -> AppendResult:
        """Append already-encoded events (the script still validates every field)."""
        live = self.live_channels
        channel = live.for_append(aggregate_type, aggregate_id) if self.notify else ""
        call = append_call(
            self.keys,
            aggregate_type,
            aggregate_id,
            events,
            expected_version,
            snapshot=snapshot,
            channel=channel,
            publish=live.publish_command,
        )
        check_batch(call.stream, events, self.limits)  # before anything is sent
        wanted = self._durability(durability)
        try:
            if not self.is_cluster:
                return run_append(self.client, self._append, call, wanted, waitaof=self._waitaof)
            # on a cluster, re-sent through a failover (idempotent: see failover.py)
            return through_failover(
                self.client,
                lambda: run_append(self.client, self._append, call, wanted, waitaof=self._waitaof),
            )
        except redis.ResponseError as exc:
            raise_if_denied(
                exc,
                self.client,
                keys=call.keys,
                channel=channel,
                script=("append", self._append),
                variables={"publish": live.publish_command.lower()},
            )
            raise

    def _durability(self, override: Durability | None) -> Durability:
        # checked against the servers read at open, once per distinct policy
        wanted = self.durability if override is None else override
        if wanted not in self._durabilities_checked:
            check_durability(wanted, self.servers)
            self._durabilities_checked.add(wanted)
        return wanted

    @property
    def is_cluster(self) -> bool:
        """Whether the store talks to a Redis Cluster."""
        return self._is_cluster

    # -- reading --------------------------------------------------------------------------

    def read(
        self,
        aggregate_type: str,
        aggregate_id: str,
        *,
        from_version: int = 1,
        to_version: int | None = None,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        """The aggregate's events with ``from_version <= version <= to_version``, in order.

        ``backwards`` starts at the newest; ``limit`` caps how many are returned.
        """
        stream = self.keys.stream(aggregate_type, aggregate_id)
        low = f"0-{max(from_version, 1)}"
        high = f"0-{to_version}" if to_version is not None else "+"
        with refusals(self.client, {stream: "stream"}, command="xrange"):
            if backwards:
                entries = cast(Entries, self.client.xrevrange(stream, high, low, count=limit))
            else:
                entries = cast(Entries, self.client.xrange(stream, low, high, count=limit))
        return list(parse_entries(self.keys, aggregate_type, aggregate_id, entries))

    def load(
        self,
        aggregate_type: str,
        aggregate_id: str,
        *,
        fingerprint: str = "",
        version: int | None = None,
        window: int = 256,
        records: bool = True,
    ) -> LoadReply:
        """A snapshot matching ``fingerprint`` (if any) and the events after it.

        One round trip (the snapshot, then the newest ``window`` events, pipelined), and
        one more XRANGE when the tail after the snapshot is longer than that. A repository
        that snapshots every N events passes a window a little over N.

        With ``records=False`` the events come as ``(version, event)`` pairs in
        ``LoadReply.typed`` (checked the same way), and ``events`` is empty: building a
        ``RecordedEvent`` per event is about a third of the time of a long load.
        """
        call = load_call(
            self.keys,
            aggregate_type,
            aggregate_id,
            fingerprint=fingerprint,
            version=version,
            window=max(window, 1),
        )
        raw = self._raw.for_key(call.stream)
        expected = {call.stream: "stream", call.snapshot_key: "hash"}
        with refusals(self.client, expected, command="xrevrange"):
            replies = send_batch(raw, call.commands)
            loaded, rest = parse_load(
                self.keys, aggregate_type, aggregate_id, call, replies, records=records
            )
            if rest is None:
                return loaded
            entries = raw.execute_command("XRANGE", call.stream, f"0-{rest[0]}", f"0-{rest[1]}")  # type: ignore[no-untyped-call]
        if not records:
            older = parse_typed(self.keys, aggregate_type, aggregate_id, entries)
            return attrs.evolve(loaded, typed=older + loaded.typed)
        events = parse_entries(self.keys, aggregate_type, aggregate_id, entries)
        return attrs.evolve(loaded, events=events + loaded.events)

    def write_snapshot(self, aggregate_type: str, aggregate_id: str, snapshot: Snapshot) -> bool:
        """Store ``snapshot`` unless a newer one of the same shape is there; True if written."""
        keys = (
            self.keys.snapshot(aggregate_type, aggregate_id),
            self.keys.stream(aggregate_type, aggregate_id),
        )
        state = json.dumps(snapshot.state, separators=(",", ":"))
        args = (snapshot.version, snapshot.fingerprint, state, snapshot.taken_at_ms or now_ms())
        try:
            written = int(self._snapshot(keys=keys, args=args))
        except redis.ResponseError as exc:
            raise_if_denied(exc, self.client, keys=keys, script=("snapshot", self._snapshot))
            raise
        if written < 0:
            raise InvalidEvent(
                keys[1],
                0,
                "snapshot.version",
                f"snapshot version {snapshot.version} is beyond the stream",
            )
        return written == 1

    def read_snapshot(self, aggregate_type: str, aggregate_id: str) -> Snapshot | None:
        """The stored snapshot, whatever its fingerprint (``None`` if there is none)."""
        key = self.keys.snapshot(aggregate_type, aggregate_id)
        with refusals(self.client, {key: "hash"}):
            raw = cast(dict[bytes, bytes], self.client.hgetall(key))
        if not raw:
            return None
        return snapshot_from_hash(key, raw)

    def drop_snapshot(self, aggregate_type: str, aggregate_id: str) -> bool:
        """Delete the aggregate's snapshot; True if there was one."""
        return bool(self.client.delete(self.keys.snapshot(aggregate_type, aggregate_id)))

    def version_of(self, aggregate_type: str, aggregate_id: str) -> int:
        """The aggregate's current version (0 if it has no events)."""
        stream = self.keys.stream(aggregate_type, aggregate_id)
        with refusals(self.client, {stream: "stream"}):
            last = cast(Entries, self.client.xrevrange(stream, count=1))
        return stored_version(stream, last[0][0]) if last else 0

    def last_position(self, partition: int) -> int:
        """The last position handed out in ``partition`` (0 before the first event)."""
        key = self.keys.position(partition)
        with refusals(self.client, {key: "string"}):
            return stored_count(key, "value", self.client.get(key))

    def read_log(
        self,
        partition: int,
        after: int = 0,
        *,
        limit: int = 1000,
        event_types: Collection[str] | None = None,
        aggregate_types: Collection[str] | None = None,
    ) -> LogPage:
        """Up to ``limit`` log entries of ``partition`` after position ``after``, resolved.

        Two round trips: XRANGE on the log, then one XREAD fetching the event behind every
        pointer that passes the filters. ``last_position`` is the last position scanned (filtered
        out or not), so a reader resumes after it.
        """
        if not 0 <= partition < self.partitions:
            raise ValueError(f"partition {partition} is not in 0..{self.partitions - 1}")
        log = self.keys.log(partition)
        with refusals(self.client, {log: "stream"}, command="xrange"):
            entries = cast(Entries, self.client.xrange(log, f"({_log_id(after)}", "+", count=limit))
        if not entries:
            return LogPage(partition, (), after, 0)
        pointers = parse_pointers(
            self.keys, partition, entries, event_types=event_types, aggregate_types=aggregate_types
        )
        last_position = version_of_id(entries[-1][0])
        return LogPage(partition, tuple(self.resolve(pointers)), last_position, len(entries))

    def resolve(self, pointers: Sequence[Pointer]) -> list[RecordedEvent]:
        """Fetch the events behind log pointers of one partition in one round trip."""
        try:
            return fetch_events(self._raw, pointers)
        except redis.ResponseError as exc:
            # the page's keys are only worth listing on the error path
            keys = tuple(dict.fromkeys(pointer.stream for pointer in pointers))
            raise_if_denied(exc, self.client, keys=keys, command="xread")
            raise_if_wrong_type(exc, self.client, dict.fromkeys(keys, "stream"))
            raise

    # -- subscriptions, projections, live notifications (issue 3) -------------------------

    def head(self) -> Checkpoint:
        """The current end of every partition log; ``after=store.head()`` skips history."""
        keys = [self.keys.position(partition) for partition in range(self.partitions)]
        with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.get(key)
            positions = pipe.execute(raise_on_error=False)
        return Checkpoint(
            tuple(
                stored_int(self.client, k, "value", raw)
                for k, raw in zip(keys, positions, strict=True)
            )
        )

    def checkpoint(self, after: After = None) -> Checkpoint:
        """What ``after=`` accepts, as a ``Checkpoint`` of this store (``FROM_NOW`` = head)."""
        if isinstance(after, str) and after.strip() == FROM_NOW:
            return self.head()
        return Checkpoint.coerce(after, self.partitions)

    def read_all(
        self,
        after: After = None,
        *,
        event_types: Collection[str] | None = None,
        aggregate_types: Collection[str] | None = None,
        limit: int | None = None,
        page_size: int = 1000,
    ) -> Iterator[RecordedEvent]:
        """Every event after ``after`` (``None``: from the beginning), then stop.

        In order within each partition (pages of the partitions take turns); filters by
        event type and aggregate type are applied to the log before events are fetched.
        While iterating it holds one connection of the store's pool (per server), with the
        next page's reads already written; ``close()`` the iterator to give it back early.
        """
        follower = LogFollower(
            self.keys,
            self.client,
            self.checkpoint(after),
            event_types=event_types,
            aggregate_types=aggregate_types,
            page_size=page_size,
            live=False,
        )
        events = (event for page in follower.pages() for event in page.events)
        return itertools.islice(events, limit) if limit is not None else events

    def subscribe(
        self,
        after: After = None,
        *,
        event_types: Collection[str] | None = None,
        aggregate_types: Collection[str] | None = None,
        page_size: int = 500,
        block_ms: int = 1000,
        reconnect_for: float = 60.0,
    ) -> CatchUpSubscription:
        """A catch-up subscription: the events after ``after``, then new ones live.

        ``after`` is a ``Checkpoint`` (or its string), a position with one partition,
        ``None`` for the beginning or ``FROM_NOW`` for new events only. Use it in a
        ``with`` block; see ``CatchUpSubscription``.
        """
        return CatchUpSubscription(
            self,
            self.checkpoint(after),
            event_types=event_types,
            aggregate_types=aggregate_types,
            page_size=page_size,
            block_ms=block_ms,
            reconnect_for=reconnect_for,
        )

    def live(
        self,
        aggregate_types: Collection[str] | str | None = None,
        *,
        event_types: Collection[str] | str | None = None,
        aggregate_ids: Collection[str] | str | None = None,
        poll_seconds: float = 0.2,
        discover_seconds: float = 5.0,
    ) -> LiveFeed:
        """Live notifications (Pub/Sub hints, not delivery), subscribed when returned.

        ``aggregate_types`` picks channels (``None``: every type in the namespace);
        ``event_types`` and ``aggregate_ids`` filter on arrival. On a sharded cluster
        (``live_channels.sharded``) there are no patterns: ``None`` subscribes to the types
        the namespace has and looks for new ones every ``discover_seconds``.
        """
        selection = LiveSelection.of(aggregate_types, event_types, aggregate_ids)
        return LiveFeed(
            self, selection, poll_seconds=poll_seconds, discover_seconds=discover_seconds
        )

    def live_stats(self) -> LiveStats:
        """Subscribers per live channel of the namespace right now (for ``stats``)."""
        return live_stats(self.client, self.live_channels)

    # -- consumer groups (issue 4) --------------------------------------------------------

    def consumer_group(self, name: str, *, start: Start = "beginning") -> ConsumerGroup:
        """The consumer group ``name`` over every partition log, created if needed.

        ``start="beginning"`` delivers the whole history, ``"end"`` only events appended
        after the group was created. Creating an existing group adopts it as it is.
        """
        return ConsumerGroup(self, name, start=start)

    def safe_trim_point(self, partition: int) -> int:
        """The lowest position of ``partition`` still needed by a consumer group (pending
        or undelivered) or a registered checkpoint: log entries below it may be trimmed."""
        return self._trim_call(partition, trim=False, before=0).safe_point

    def trim_log(self, partition: int | None = None, *, before: int = 0) -> list[TrimResult]:
        """Delete log entries no group or registered checkpoint still needs (explicit only).

        Trims every partition (or just ``partition``) up to its safe trim point, or up
        to ``before`` if that is lower; never further. Aggregate streams are never
        trimmed, so dead letters and ``read``/``load`` keep working.
        """
        partitions = range(self.partitions) if partition is None else [partition]
        return [self._trim_call(p, trim=True, before=before) for p in partitions]

    def _trim_call(self, partition: int, *, trim: bool, before: int) -> TrimResult:
        if not 0 <= partition < self.partitions:
            raise ValueError(f"partition {partition} is not in 0..{self.partitions - 1}")
        keys = (
            self.keys.log(partition),
            self.keys.checkpoints(partition),
            self.keys.position(partition),
        )
        try:
            reply = self._trim(keys=keys, args=("trim" if trim else "check", max(before, 0)))
        except redis.ResponseError as exc:
            raise_if_denied(exc, self.client, keys=keys, script=("trim", self._trim))
            raise
        return parse_trim_reply(partition, reply)

    # -- namespace ------------------------------------------------------------------------

    def _adopt_partitions(self, asked: int | None) -> int:
        if asked is not None and (
            isinstance(asked, bool) or not isinstance(asked, int) or asked < 1
        ):
            raise ConfigurationError(f"partitions must be an int >= 1, got {asked!r}")
        meta = KeySchema(self.namespace).meta
        with self.client.pipeline(transaction=False) as pipe:  # one round trip on open
            pipe.hsetnx(meta, "partitions", asked or 1)
            pipe.hsetnx(meta, "format", 1)
            pipe.hget(meta, "partitions")
            try:
                stored = int(pipe.execute()[2] or 1)
            except redis.ResponseError as exc:  # the first command on the namespace's keys
                raise_if_denied(exc, self.client, keys=(meta,), command="hsetnx")
                raise
        if asked is not None and asked != stored:
            raise ConfigurationError(
                f"namespace {self.namespace!r} has {stored} partitions; it was asked for {asked}. "
                "Partitions are fixed when a namespace is created: open it without partitions="
            )
        return stored


def _log_id(position: int) -> str:
    return f"0-{position}" if position > 0 else "0-0"


def _close_client(client: redis.Redis) -> None:
    client.close()
    if isinstance(client, RedisCluster):
        release_cluster_nodes(client)
