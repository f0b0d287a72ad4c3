# unasync: generates the sync module of the same name
"""``AsyncEventStore``: appends, reads and loads against Redis, sending what the core builds."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Self, cast

import attrs
import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster

from aggregates import DomainEvent
from eventstore._async.clients import close_client, load_hot_script, load_script, open_client
from eventstore._async.durability import (
    Durability,
    check_durability,
    run_append,
    supports_waitaof,
)
from eventstore._async.failover import through_failover
from eventstore._async.io import close_at_exit, run_blocking
from eventstore._async.server import server_infos
from eventstore._async.shards import AsyncRawClients
from eventstore._async.store_log import AsyncStoreLog
from eventstore._async.stored import refusals
from eventstore._core.codec import (
    encode_batch,
    now_ms,
    stored_version,
)
from eventstore._core.errors import ConfigurationError, InvalidEvent
from eventstore._core.expected import ExpectedVersion
from eventstore._core.keys import KeySchema, validate_name
from eventstore._core.limits import DEFAULT_LIMITS, Limits, check_batch
from eventstore._core.notifications import LiveChannels
from eventstore._core.records import AppendResult, NewEvent, RecordedEvent, Snapshot
from eventstore._core.scripts import (
    LoadReply,
    append_call,
    load_call,
    parse_entries,
    parse_load,
    parse_typed,
    snapshot_from_hash,
)
from eventstore._core.server import ServerInfo, check_capabilities, check_server
from eventstore._redis.embedded import EmbeddedServer
from eventstore._redis.permissions import address_of, raise_if_denied

if TYPE_CHECKING:
    pass

__all__ = ["AsyncEventStore", "Durability", "load_script"]


class AsyncEventStore(AsyncStoreLog):
    """An event store in one Redis namespace.

    ::

        store = await AsyncEventStore.from_url("redis://127.0.0.1:6379/0", namespace="bank")
        await store.append("Account", "acc-1", [Deposited(amount=10)], expected_version=0)
        for recorded in await store.read("Account", "acc-1"):
            print(recorded.version, recorded.event)

    Open with ``from_url``, ``embedded`` or ``open`` (on a client of your own). The number
    of partitions is fixed when the namespace is created; opening an existing namespace
    adopts it.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        namespace: str,
        partitions: int,
        servers: Sequence[ServerInfo],
        durability: Durability | None = None,
        notify: bool = True,
        limits: Limits | None = None,
    ) -> None:
        """A store on a namespace already opened: use ``open``, ``from_url`` or ``embedded``."""
        self.client = client
        self.namespace = namespace
        self.durability = durability or Durability()
        self.notify = notify
        self.limits = limits or DEFAULT_LIMITS
        # isinstance against redis-py's client classes goes through typing's Protocol check
        # (~0.5 us): asked once here, not on every append
        self._is_cluster = isinstance(client, RedisCluster)
        # on a cluster every primary holds history: each one must be safe
        self.servers: list[ServerInfo] = list(servers)
        self.server: ServerInfo = self.servers[0]
        self._waitaof = supports_waitaof(self.servers)
        self._durabilities_checked = {self.durability}
        self.keys = KeySchema(namespace, partitions, clustered=self._is_cluster)
        # sharded notifications (SPUBLISH) need a cluster whose every primary has them
        sharded = self.is_cluster and all(info.has_sharded_pubsub for info in self.servers)
        self.live_channels = LiveChannels(self.keys, sharded=sharded)
        self._append = load_hot_script(client, "append")
        self._snapshot = load_script(client, "snapshot")
        self._raw = AsyncRawClients(client)  # reads parsed by the core, without reply callbacks
        self._trim = load_script(client, "trim")
        self._embedded: EmbeddedServer | None = None
        self._client_name = ""

    # -- opening --------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        client: redis.Redis,
        *,
        namespace: str = "es",
        partitions: int | None = None,
        durability: Durability | None = None,
        notify: bool = True,
        check: bool = True,
        limits: Limits | None = None,
    ) -> Self:
        """Open ``namespace`` on ``client``: checks the servers (``check``) and the
        durability policy, and creates the namespace or adopts its partitions."""
        validate_name("namespace", namespace)
        servers = await server_infos(client)
        for info in servers:  # not optional: nothing works without these
            check_capabilities(info, address_of(client))
        if check:
            for info in servers:
                check_server(info)
        check_durability(durability or Durability(), servers)
        adopted = await _adopt_partitions(client, namespace, partitions)
        return cls(
            client,
            namespace=namespace,
            partitions=adopted,
            servers=servers,
            durability=durability,
            notify=notify,
            limits=limits,
        )

    @classmethod
    async def from_url(
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
        client = await open_client(url, cluster=cluster, **redis_options)
        try:
            return await cls.open(
                client,
                namespace=namespace,
                partitions=partitions,
                durability=durability,
                notify=notify,
                limits=limits,
            )
        except BaseException:
            await close_client(client)  # a store that failed to open leaves no connection
            raise

    @classmethod
    async def embedded(
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
        await run_blocking(server.ensure_running)
        name = f"eventstore-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        client = await open_client(server.url, client_name=name)
        try:
            store = await cls.open(
                client,
                namespace=namespace,
                partitions=partitions,
                durability=durability,
                notify=notify,
                limits=limits,
            )
        except BaseException:
            await close_client(client)
            raise
        store._embedded, store._client_name = server, name
        close_at_exit(store, server, name)
        return store

    async def aclose(self) -> None:
        """Release connections (and stop an embedded server nobody else uses)."""
        self._append.release()
        await self._raw.aclose()
        await close_client(self.client)
        if self._embedded is not None:
            server, self._embedded = self._embedded, None
            await run_blocking(server.shutdown_if_unused, self._client_name)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- writing --------------------------------------------------------------------------

    async def append(
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
        return await self.append_encoded(
            aggregate_type,
            aggregate_id,
            encoded,
            expected_version,
            snapshot=snapshot,
            durability=durability,
        )

    async def append_encoded(
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
                return await run_append(
                    self.client, self._append, call, wanted, waitaof=self._waitaof
                )

            # on a cluster, re-sent through a failover (idempotent: see failover.py)
            async def attempt() -> AppendResult:
                return await run_append(
                    self.client, self._append, call, wanted, waitaof=self._waitaof
                )

            return await through_failover(self.client, attempt)
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

    async def read(
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
        command: tuple[str | int, ...] = (
            ("XREVRANGE", stream, high, low) if backwards else ("XRANGE", stream, low, high)
        )
        if limit is not None:
            command = (*command, "COUNT", limit)
        async with refusals(self.client, {stream: "stream"}, command="xrange"):
            (entries,) = await self._send(stream, [command])
        return list(parse_entries(self.keys, aggregate_type, aggregate_id, entries))

    async def load(
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
        expected = {call.stream: "stream", call.snapshot_key: "hash"}
        async with refusals(self.client, expected, command="xrevrange"):
            replies = await self._send(call.stream, call.commands)
            loaded, rest = parse_load(
                self.keys, aggregate_type, aggregate_id, call, replies, records=records
            )
            if rest is None:
                return loaded
            older = ("XRANGE", call.stream, f"0-{rest[0]}", f"0-{rest[1]}")
            (entries,) = await self._send(call.stream, [older])
        if not records:
            typed = parse_typed(self.keys, aggregate_type, aggregate_id, entries)
            return attrs.evolve(loaded, typed=typed + loaded.typed)
        events = parse_entries(self.keys, aggregate_type, aggregate_id, entries)
        return attrs.evolve(loaded, events=events + loaded.events)

    async def write_snapshot(
        self, aggregate_type: str, aggregate_id: str, snapshot: Snapshot
    ) -> bool:
        """Store ``snapshot`` unless a newer one of the same shape is there; True if written."""
        keys = (
            self.keys.snapshot(aggregate_type, aggregate_id),
            self.keys.stream(aggregate_type, aggregate_id),
        )
        state = json.dumps(snapshot.state, separators=(",", ":"))
        args = (snapshot.version, snapshot.fingerprint, state, snapshot.taken_at_ms or now_ms())
        try:
            written = int(await self._snapshot(keys=keys, args=args))
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

    async def read_snapshot(self, aggregate_type: str, aggregate_id: str) -> Snapshot | None:
        """The stored snapshot, whatever its fingerprint (``None`` if there is none)."""
        key = self.keys.snapshot(aggregate_type, aggregate_id)
        async with refusals(self.client, {key: "hash"}):
            raw = cast(dict[bytes, bytes], await self.client.hgetall(key))
        if not raw:
            return None
        return snapshot_from_hash(key, raw)

    async def drop_snapshot(self, aggregate_type: str, aggregate_id: str) -> bool:
        """Delete the aggregate's snapshot; True if there was one."""
        return bool(await self.client.delete(self.keys.snapshot(aggregate_type, aggregate_id)))

    async def version_of(self, aggregate_type: str, aggregate_id: str) -> int:
        """The aggregate's current version (0 if it has no events)."""
        stream = self.keys.stream(aggregate_type, aggregate_id)
        async with refusals(self.client, {stream: "stream"}):
            (last,) = await self._send(stream, [("XREVRANGE", stream, "+", "-", "COUNT", 1)])
        return stored_version(stream, last[0][0]) if last else 0


async def _adopt_partitions(client: redis.Redis, namespace: str, asked: int | None) -> int:
    """The namespace's partitions: ``asked`` (or 1) for a new one, else what it has."""
    if asked is not None and (isinstance(asked, bool) or not isinstance(asked, int) or asked < 1):
        raise ConfigurationError(f"partitions must be an int >= 1, got {asked!r}")
    meta = KeySchema(namespace).meta
    async with client.pipeline(transaction=False) as pipe:  # one round trip on open
        pipe.hsetnx(meta, "partitions", asked or 1)
        pipe.hsetnx(meta, "format", 1)
        pipe.hget(meta, "partitions")
        try:
            stored = int((await pipe.execute())[2] or 1)
        except redis.ResponseError as exc:  # the first command on the namespace's keys
            raise_if_denied(exc, client, keys=(meta,), command="hsetnx")
            raise
    if asked is not None and asked != stored:
        raise ConfigurationError(
            f"namespace {namespace!r} has {stored} partitions; it was asked for {asked}. "
            "Partitions are fixed when a namespace is created: open it without partitions="
        )
    return stored
