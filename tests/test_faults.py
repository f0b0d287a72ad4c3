"""Faults: replies lost on the wire after the server ran the append, scripts lost by the
server (NOSCRIPT), a server out of memory, a projection through a server restart.

Elsewhere: the wire-level lost reply with a re-save (test_append.py), subscriptions
(test_subscription_restart.py) and consumer group workers (test_worker_outage.py,
test_groups_crash.py) through restarts, durable appends after SCRIPT FLUSH
(test_durability.py), SIGKILL during appends (test_crash.py).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import cast

import pytest
import redis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from eventstore import (
    AppendResult,
    Durability,
    EventStore,
    OutOfMemory,
    Projection,
    ProjectionContext,
    RecordedEvent,
    Repository,
    Snapshot,
)
from eventstore.testing import RedisServer, free_port
from tests.domain import Account, Deposited, Opened
from tests.fronts import Front, open_store
from tests.letters import event_of
from tests.waiting import retrying, wait_for

ALWAYS = {"appendonly": "yes", "appendfsync": "always"}
STEP = 256 * 1024


pytestmark = pytest.mark.both_fronts


class ReplyCutter:
    """A TCP proxy in front of a server that, when armed, lets the next request through,
    waits for the server's reply, drops it and cuts the connection: the server ran the
    command, the client never learns the outcome."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.armed = threading.Event()
        self.cut = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._sockets: list[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def close(self) -> None:
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream_port))
            self._sockets += [client, server]
            doomed = threading.Event()
            threading.Thread(target=self._up, args=(client, server, doomed), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, doomed), daemon=True).start()

    def _up(self, client: socket.socket, server: socket.socket, doomed: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while chunk := client.recv(65536):
                if self.armed.is_set():
                    self.armed.clear()
                    doomed.set()  # the reply to this request will be dropped
                server.sendall(chunk)

    def _down(self, server: socket.socket, client: socket.socket, doomed: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while chunk := server.recv(65536):
                if doomed.is_set():  # the server answered: it ran the command
                    self.cut.set()
                    client.shutdown(socket.SHUT_RDWR)
                    server.close()
                    client.close()
                    return
                client.sendall(chunk)


@pytest.fixture
def aof_always() -> Iterator[RedisServer]:
    server = RedisServer("redis-server", config=ALWAYS)
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def cutter(aof_always: RedisServer) -> Iterator[ReplyCutter]:
    proxy = ReplyCutter(aof_always.port)
    try:
        yield proxy
    finally:
        proxy.close()


@pytest.mark.parametrize("durability", [Durability.none(), Durability.local_fsync()])
@pytest.mark.parametrize("who_retries", ["redis-py", "the caller"])
def test_a_save_whose_reply_is_lost_is_retried_without_duplicates(
    cutter: ReplyCutter, durability: Durability, who_retries: str, front: Front
) -> None:
    # redis-py 8.1: a client made by from_url does not retry unless told to
    # each front takes redis-py's retry policy of its own kind
    policy = AsyncRetry if front == "async" else Retry
    retry = policy(NoBackoff(), 3 if who_retries == "redis-py" else 0)
    store = open_store(front, cutter.url, namespace="lost", durability=durability, retry=retry)
    try:
        accounts = Repository(store, Account)
        warm = Account(id="warm-up")  # loads the script: the cut reply is the append's
        warm.open("w")
        accounts.save(warm)
        account = Account(id="acc-1")
        account.open("ann")
        account.deposit(7)
        cutter.armed.set()
        if who_retries == "redis-py":
            result = accounts.save(account)  # redis-py re-sends on a new connection
        else:
            with pytest.raises(redis.ConnectionError):
                accounts.save(account)
            assert account.pending_events  # not marked committed: the caller retries it
            result = accounts.save(account)
        assert cutter.cut.is_set()
        assert result is not None
        assert result.duplicate  # the first send was written; the retry wrote nothing
        assert (result.first_version, result.positions) == (1, (2, 3))
        assert [e.version for e in store.read("Account", "acc-1")] == [1, 2]
        assert store.last_position(0) == 3
        assert [e.position for e in store.read_all()] == [1, 2, 3]
        assert accounts.get("acc-1").balance == 7
    finally:
        store.close()


# -- NOSCRIPT: every script of the store reloads itself ----------------------------------


def _flush_then(store: EventStore, operation: Callable[[EventStore], object]) -> object:
    store.client.script_flush()  # what a restart or a failover to a fresh replica does
    return operation(store)


def _history(store: EventStore) -> None:
    store.append("Account", "acc-1", [Opened(owner="a"), Deposited(amount=2)], 0)


def _failing_worker_dead_letters(store: EventStore) -> object:
    group = store.consumer_group("g")

    def handler(_record: RecordedEvent) -> None:
        raise RuntimeError("always fails")

    worker = group.worker("w", handler, max_deliveries=1, claim_idle=timedelta(milliseconds=1))
    worker.run(stop_when_idle=True)  # lease and fail scripts
    return [event_of(d).event_id for d in group.dead_letters()]


def _replay_dead_letters(store: EventStore) -> object:
    group = store.consumer_group("g")
    assert len(group.dead_letters()) == 2
    store.client.script_flush()
    return group.replay_dead_letters()


OPERATIONS: dict[str, tuple[Callable[[EventStore], object], object]] = {
    "append": (
        lambda s: s.append("Account", "acc-1", [Deposited(amount=1)], 2).positions,
        (3,),
    ),
    "load": (lambda s: Repository(s, Account).get("acc-1").balance, 2),
    "resolve (read_log)": (lambda s: [e.version for e in s.read_log(0).events], [1, 2]),
    "resolve (read_all)": (lambda s: [e.version for e in s.read_all()], [1, 2]),
    "snapshot": (
        lambda s: s.write_snapshot("Account", "acc-1", Snapshot(2, "f", {"balance": 2})),
        True,
    ),
    "trim": (lambda s: [t.partition for t in s.trim_log()], [0]),
    "group lease and fail": (_failing_worker_dead_letters, None),
}


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_every_script_reloads_after_noscript(store: EventStore, name: str) -> None:
    _history(store)
    operation, expected = OPERATIONS[name]
    got = _flush_then(store, operation)
    if expected is not None:
        assert got == expected
    else:
        assert len(got) == 2  # type: ignore[arg-type]
        assert _replay_dead_letters(store) == 2  # the replay script reloads too


def test_a_restart_loses_the_scripts_and_the_store_carries_on(
    aof_always: RedisServer, front: Front
) -> None:
    with open_store(front, aof_always.url, namespace="ns") as store:
        _history(store)
        aof_always.restart()  # a new process: no scripts
        assert retrying(lambda: store.append("Account", "acc-1", [Deposited(amount=1)], 2))
        assert Repository(store, Account).get("acc-1").balance == 3
        assert [e.position for e in store.read_all()] == [1, 2, 3]


# -- maxmemory with noeviction -----------------------------------------------------------


@pytest.fixture(params=["redis-server", "embedded"])
def small_server(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    from eventstore._redis.embedded import embedded_binary

    binary = "redis-server" if request.param == "redis-server" else str(embedded_binary())
    server = RedisServer(binary)  # noeviction (the helper's default)
    server.start()
    try:
        yield server
    finally:
        server.close()


def _used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def _big(index: int, size: int) -> Opened:
    return Opened(owner=f"{index:06d}" + "x" * size)


def _append_crossing_the_limit(store: EventStore) -> AppendResult:
    """Raise maxmemory step by step (256 KB) from what is used until a 2 MB batch goes
    through. The arguments themselves take memory, so the first batches are refused at
    their first write (and write nothing); the one accepted started below the limit and
    crossed it mid-script: Redis refuses only a script's FIRST write, so it is whole."""
    client, base = store.client, _used_memory(store.client)
    batch = [_big(i, 40_000) for i in range(50)]
    ids = [f"big-{i}" for i in range(50)]
    for step in range(80):
        limit = base + step * STEP
        client.config_set("maxmemory", limit)
        try:
            result = store.append("Account", "acc-2", batch, 0, event_ids=ids)
        except OutOfMemory:
            assert client.xlen(store.keys.stream("Account", "acc-2")) == 0
            assert store.last_position(0) == 1
            continue
        # the step before was refused: at its first write this call already used more
        # than ``limit - step``; it then wrote more than a step: it crossed ``limit``
        written = int(client.memory_usage(store.keys.stream("Account", "acc-2")) or 0)
        assert step > 0, "the first limit tried was not tight"
        assert written > STEP, "the batch did not cross the limit mid-script"
        return result
    raise AssertionError("the batch was never accepted")


def test_out_of_memory_is_a_clear_error_and_nothing_is_half_written(
    small_server: RedisServer,
    front: Front,
) -> None:
    store = open_store(front, small_server.url, namespace="oom", partitions=1)
    client = store.client
    try:
        store.append("Account", "acc-1", [Opened(owner="a")], 0)
        crossing = _append_crossing_the_limit(store)
        assert crossing.positions == tuple(range(2, 52))
        assert len(store.read("Account", "acc-2")) == 50
        # the server full (a limit below what is used): appends are refused at their
        # first write
        client.config_set("maxmemory", _used_memory(client) // 2)
        with pytest.raises(OutOfMemory) as info:
            store.append("Account", "acc-3", [Deposited(amount=1)] * 3, 0)
        stream = store.keys.stream("Account", "acc-3")
        assert info.value.stream == stream
        assert stream in str(info.value)
        assert "out of memory" in str(info.value)
        assert "nothing was written" in str(info.value)
        assert store.read("Account", "acc-3") == []
        assert store.last_position(0) == 51
        assert client.xlen(store.keys.log(0)) == 51
        assert not client.sismember(store.keys.index(0, "Account"), "acc-3")
        # an existing aggregate too, and through the waiting path
        with pytest.raises(OutOfMemory):
            store.append(
                "Account",
                "acc-1",
                [Deposited(amount=1)],
                1,
                durability=Durability.on_replicas(1, timeout_ms=50),
            )
        assert store.version_of("Account", "acc-1") == 1
        # memory freed (here: the limit raised): the store appends again, gap-free
        client.config_set("maxmemory", 0)
        assert store.append("Account", "acc-3", [Deposited(amount=1)] * 3, 0).positions == (
            52,
            53,
            54,
        )
        assert [e.position for e in store.read_all()] == list(range(1, 55))
    finally:
        client.config_set("maxmemory", 0)
        store.close()


# -- a projection through a server restart -----------------------------------------------


@pytest.mark.slow
@pytest.mark.sync_front  # a sync Projection; the async runner has its own restart tests
@pytest.mark.parametrize("kill", [False, True], ids=["restart", "sigkill"])
def test_projection_resumes_after_a_server_restart_applying_each_event_once(
    aof_always: RedisServer, kill: bool, front: Front
) -> None:
    store = open_store(front, aof_always.url, namespace="pr", partitions=2)
    projection = Projection(store, "totals", block_ms=100, reconnect_for=30)

    @projection.on(Deposited)
    def _deposited(event: Deposited, ctx: ProjectionContext) -> None:
        ctx.pipe.hincrby(ctx.key("totals"), ctx.record.aggregate_id, event.amount)
        ctx.pipe.rpush(ctx.key("seen"), ctx.record.event_id)

    def deposit(aggregate_id: str, version: int) -> None:
        retrying(
            lambda: store.append(
                "Account",
                aggregate_id,
                [Deposited(amount=version + 1)],
                version,
                event_ids=[f"{aggregate_id}-{version + 1}"],
            )
        )

    try:
        projection.start()
        for version in range(5):
            for aggregate_id in ("a", "b", "c"):
                deposit(aggregate_id, version)
        assert projection.wait_until_caught_up(15)
        aof_always.restart(kill=kill)
        for version in range(5, 10):
            for aggregate_id in ("a", "b", "c"):
                deposit(aggregate_id, version)
        wait_for(lambda: store.client.llen(projection.active_key("seen")) >= 30, timeout=20)
        assert projection.wait_until_caught_up(15)
    finally:
        projection.stop()
        store.close()
    assert projection.error is None
    with open_store(front, aof_always.url, namespace="pr") as reopened:
        client = reopened.client
        seen_raw = cast(list[bytes], client.lrange(projection.active_key("seen"), 0, -1))
        seen = [e.decode() for e in seen_raw]
        assert sorted(seen) == sorted(f"{a}-{v}" for a in "abc" for v in range(1, 11))
        totals = cast(dict[bytes, bytes], client.hgetall(projection.active_key("totals")))
        assert {k.decode(): int(v) for k, v in totals.items()} == dict.fromkeys("abc", 55)
