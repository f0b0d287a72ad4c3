"""Durability policies per store and per append: none, local fsync, n replicas, n replicas +
fsync, on Redis 6.2 and 7.0 (WAIT, verified ``appendfsync always``) and on Redis 8 and
Valkey 9.1 (WAITAOF); the pure policy checks without a server."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventstore import (
    ConfigurationError,
    Durability,
    DurabilityError,
    Repository,
)
from eventstore._core.durability import (
    ServerDurability,
    check_wait_reply,
    durability_refusal,
    wait_command,
)
from eventstore.testing import RedisServer
from tests.domain import Account, Deposited, Opened
from tests.fronts import Front, open_store
from tests.servers import server_binary

BEFORE_7_2 = ["redis62", "redis7"]
"""Servers without WAITAOF: fsync durability needs appendfsync always there."""
WITH_WAITAOF = ["redis8", "valkey9"]
ALWAYS = {"appendonly": "yes", "appendfsync": "always"}


pytestmark = pytest.mark.both_fronts


@pytest.fixture(params=BEFORE_7_2)
def binary(request: pytest.FixtureRequest) -> str:
    return server_binary(request.param)


def _server(binary: str | Path, **config: str) -> RedisServer:
    # 7.x syncs replicas disklessly after a 5 s delay by default: start at once
    server = RedisServer(binary, config={"repl-diskless-sync-delay": "0", **config})
    server.start()
    return server


@pytest.fixture
def primary(binary: str | Path) -> Iterator[RedisServer]:
    server = _server(binary)
    try:
        yield server
    finally:
        server.close()


def _wait_replicating(primary: RedisServer, replica: RedisServer) -> None:
    deadline = time.monotonic() + 20
    with closing(primary.client()) as up, closing(replica.client()) as down:
        while True:
            linked = down.info("replication").get("master_link_status") == "up"
            if linked and up.info("replication").get("connected_slaves") == 1:
                return
            assert time.monotonic() < deadline, "the replica did not sync"
            time.sleep(0.05)


def _replica_of(primary: RedisServer, binary: str | Path, **config: str) -> RedisServer:
    replica = _server(binary, replicaof=f"127.0.0.1 {primary.port}", **config)
    try:
        _wait_replicating(primary, replica)
    except BaseException:
        replica.close()
        raise
    return replica


# -- the policy, without a server -------------------------------------------------------


def test_named_constructors_and_levels() -> None:
    assert Durability.none() == Durability() == Durability(fsync=False, replicas=0)
    assert not Durability.none().waits
    assert Durability.local_fsync(timeout_ms=50) == Durability(fsync=True, timeout_ms=50)
    assert Durability.on_replicas(2) == Durability(replicas=2)
    assert Durability.on_replicas(1, fsync=True) == Durability(fsync=True, replicas=1)
    levels = [
        Durability.none(),
        Durability.local_fsync(),
        Durability.on_replicas(1),
        Durability.on_replicas(2, fsync=True),
    ]
    assert [d.level for d in levels] == [
        "none",
        "local fsync",
        "1 replica",
        "2 replicas + fsync",
    ]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Durability(replicas=-1), "replicas must be an int >= 0"),
        (lambda: Durability(replicas=True), "replicas must be an int >= 0"),
        (lambda: Durability(timeout_ms=0), "timeout_ms must be an int >= 1"),
        (lambda: Durability(fsync="yes"), "fsync must be a bool"),  # type: ignore[arg-type]
        (lambda: Durability.on_replicas(0), "needs n >= 1"),
    ],
)
def test_bad_policies_are_refused(make: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        make()  # type: ignore[operator]


def _srv(version: str, appendonly: str | None, appendfsync: str | None) -> ServerDurability:
    return ServerDurability(tuple(int(p) for p in version.split(".")), appendonly, appendfsync)


@pytest.mark.parametrize(
    ("wanted", "server", "refused"),
    [
        (Durability.none(), _srv("6.2.14", "no", "everysec"), None),
        (Durability.on_replicas(3), _srv("6.2.14", None, None), None),
        (Durability.local_fsync(), _srv("7.0.15", "yes", "always"), None),
        (Durability.local_fsync(), _srv("7.0.15", "yes", "everysec"), "needs appendfsync always"),
        (Durability.local_fsync(), _srv("6.2.14", "no", "always"), "no AOF to fsync"),
        (Durability.local_fsync(), _srv("7.0.15", None, None), "cannot be verified"),
        (Durability.local_fsync(), _srv("7.2.0", "yes", "everysec"), None),
        (Durability.local_fsync(), _srv("8.2.3", "yes", "no"), "never fsyncs"),
        (Durability.local_fsync(), _srv("8.2.3", "no", "everysec"), "no AOF to fsync"),
        (Durability.on_replicas(1, fsync=True), _srv("8.2.3", "yes", "always"), None),
        (Durability.on_replicas(1, fsync=True), _srv("7.0.15", "yes", "always"), "WAITAOF"),
        (Durability.on_replicas(2, fsync=True), _srv("6.2.14", "yes", "always"), "7.2"),
    ],
)
def test_which_server_can_honour_which_policy(
    wanted: Durability, server: ServerDurability, refused: str | None
) -> None:
    reason = durability_refusal(wanted, server)
    if refused is None:
        assert reason is None
    else:
        assert reason is not None
        assert refused in reason


@pytest.mark.parametrize(
    ("wanted", "waitaof", "command"),
    [
        (Durability.none(), True, None),
        (Durability.none(), False, None),
        (Durability.local_fsync(timeout_ms=7), True, ("WAITAOF", 1, 0, 7)),
        (Durability.local_fsync(), False, ("CONFIG", "GET", "append*")),
        (Durability.on_replicas(2, timeout_ms=9), True, ("WAIT", 2, 9)),
        (Durability.on_replicas(2, timeout_ms=9), False, ("WAIT", 2, 9)),
        (Durability.on_replicas(2, fsync=True, timeout_ms=9), True, ("WAITAOF", 1, 2, 9)),
    ],
)
def test_the_wait_command_of_each_level(
    wanted: Durability, waitaof: bool, command: tuple[str | int, ...] | None
) -> None:
    assert wait_command(wanted, waitaof=waitaof) == command


@settings(max_examples=100)
@given(
    fsync=st.booleans(),
    replicas=st.integers(0, 4),
    local_acks=st.integers(0, 1),
    replica_acks=st.integers(0, 5),
)
def test_a_wait_reply_passes_exactly_when_it_confirms_the_policy(
    fsync: bool, replicas: int, local_acks: int, replica_acks: int
) -> None:
    wanted = Durability(fsync=fsync, replicas=replicas, timeout_ms=5)
    for waitaof in (True, False):
        command = wait_command(wanted, waitaof=waitaof)
        if command is None or command[0] == "CONFIG":
            continue
        reply: object = [local_acks, replica_acks] if command[0] == "WAITAOF" else replica_acks
        enough = replica_acks >= replicas and (command[0] == "WAIT" or local_acks >= 1)
        if enough:
            check_wait_reply("s", wanted, command, reply)
        else:
            with pytest.raises(DurabilityError) as info:
                check_wait_reply("s", wanted, command, reply)
            assert info.value.stream == "s"
            assert info.value.wanted == wanted.level
            assert "may still persist" in str(info.value)


@pytest.mark.parametrize(
    ("reply", "ok"),
    [
        ({b"appendonly": b"yes", b"appendfsync": b"always", b"appendfilename": b"x"}, True),
        ([b"appendfsync", b"always", b"appendonly", b"yes"], True),
        ({b"appendonly": b"yes", b"appendfsync": b"everysec"}, False),
        ({b"appendonly": b"no", b"appendfsync": b"always"}, False),
    ],
)
def test_the_always_fsync_check_reads_the_config_after_the_write(reply: object, ok: bool) -> None:
    wanted = Durability.local_fsync()
    command = ("CONFIG", "GET", "append*")
    if ok:
        check_wait_reply("s", wanted, command, reply)
    else:
        with pytest.raises(DurabilityError, match="changed since the store connected"):
            check_wait_reply("s", wanted, command, reply)


def test_an_error_reply_to_the_wait_is_a_durability_error() -> None:
    with pytest.raises(DurabilityError, match="an error from WAITAOF: nope") as info:
        check_wait_reply("s", Durability.local_fsync(), ("WAITAOF", 1, 0, 1), ValueError("nope"))
    assert "may still persist" in str(info.value)


# -- Redis 6.2 and 7.0: WAIT, and verified appendfsync always ----------------------------


def test_waiting_for_a_replica_succeeds_when_one_acknowledges(
    binary: str | Path, primary: RedisServer, front: Front
) -> None:
    replica = _replica_of(primary, binary)
    try:
        durability = Durability.on_replicas(1, timeout_ms=10_000)
        with open_store(front, primary.url, namespace="d", durability=durability) as store:
            result = store.append("Account", "acc-1", [Opened(owner="ann")], 0)
            assert result.first_version == 1
            stream = store.keys.stream("Account", "acc-1")
        with closing(replica.client()) as on_replica:
            assert on_replica.xlen(stream) == 1  # WAIT returned: the replica has it
    finally:
        replica.close()


def test_no_replica_raises_after_the_timeout_and_the_write_is_there(
    primary: RedisServer,
    front: Front,
) -> None:
    durability = Durability.on_replicas(1, timeout_ms=200)
    with open_store(front, primary.url, namespace="d", durability=durability) as store:
        started = time.monotonic()
        ids = [str(uuid.uuid4())]
        with pytest.raises(DurabilityError) as info:
            store.append("Account", "acc-1", [Opened(owner="ann")], 0, event_ids=ids)
        assert time.monotonic() - started >= 0.19  # it did wait
        assert info.value.stream == store.keys.stream("Account", "acc-1")
        assert info.value.wanted == "1 replica"
        assert "replicas=0" in info.value.got
        assert "may still persist" in str(info.value)
        assert store.version_of("Account", "acc-1") == 1
        # the advice in the message holds: re-sending the same batch writes nothing twice
        with pytest.raises(DurabilityError):
            store.append("Account", "acc-1", [Opened(owner="ann")], 0, event_ids=ids)
        assert store.version_of("Account", "acc-1") == 1


def test_a_resend_after_a_durability_error_waits_for_the_replica_again(
    binary: str | Path, primary: RedisServer, front: Front
) -> None:
    """The re-send the error message advises must prove replication, not assume it.

    A re-send that finds its batch already there writes nothing. Redis documents WAIT as
    counting the connection's previous *writes*; a fresh connection with none would then
    count a frozen replica as caught up. Redis 7.0 measured here in fact waits for the
    offset at the connection's last command of any kind, so this passes there with or
    without the guard; the append script still makes one replicated no-op write on that
    path so the re-send waits like the first send whatever the server's rule is.
    """
    replica = _replica_of(primary, binary)
    assert replica.process is not None
    durability = Durability.on_replicas(1, timeout_ms=300)
    ids = [str(uuid.uuid4())]
    try:
        replica.process.send_signal(signal.SIGSTOP)  # connected, but acknowledges nothing
        store = open_store(front, primary.url, namespace="d", durability=durability)
        with store, pytest.raises(DurabilityError):
            store.append("Account", "acc-1", [Opened(owner="ann")], 0, event_ids=ids)
        with open_store(front, primary.url, namespace="d", durability=durability) as fresh:
            with pytest.raises(DurabilityError):
                fresh.append("Account", "acc-1", [Opened(owner="ann")], 0, event_ids=ids)
            replica.process.send_signal(signal.SIGCONT)
            patient = Durability.on_replicas(1, timeout_ms=10_000)  # the replica catches up
            resent = fresh.append(
                "Account", "acc-1", [Opened(owner="ann")], 0, event_ids=ids, durability=patient
            )
            assert resent.first_version == 1
            assert fresh.version_of("Account", "acc-1") == 1
            stream = fresh.keys.stream("Account", "acc-1")
        with closing(replica.client()) as on_replica:
            assert on_replica.xlen(stream) == 1
    finally:
        replica.process.send_signal(signal.SIGCONT)
        replica.close()


@pytest.mark.parametrize(
    "config",
    [{}, {"appendonly": "yes", "appendfsync": "everysec"}, {"appendfsync": "always"}],
)
def test_local_fsync_is_refused_without_aof_fsync_always(
    binary: str | Path, config: dict[str, str], front: Front
) -> None:
    server = RedisServer(binary, config=config)
    server.start()
    try:
        with pytest.raises(ConfigurationError) as info:
            open_store(front, server.url, namespace="d", durability=Durability.local_fsync())
        message = str(info.value)
        assert "durability 'local fsync'" in message
        assert f"appendfsync={config.get('appendfsync', 'everysec')}" in message
        assert "Redis 7.0" in message or "Redis 6.2" in message
    finally:
        server.close()


def test_replicas_plus_fsync_is_refused_before_7_2_naming_the_version(
    binary: str | Path,
    front: Front,
) -> None:
    server = _server(binary, **ALWAYS)
    try:
        wanted = Durability.on_replicas(1, fsync=True)
        with pytest.raises(ConfigurationError, match="only WAITAOF") as at_open:
            open_store(front, server.url, namespace="d", durability=wanted)
        assert "'1 replica + fsync'" in str(at_open.value)
        with open_store(front, server.url, namespace="d") as store:
            assert f"Redis {store.server.version_text}" in str(at_open.value)
            with pytest.raises(ConfigurationError, match=r"upgrade to Redis 7\.2"):
                store.append("Account", "acc-1", [Opened(owner="a")], 0, durability=wanted)
            assert store.version_of("Account", "acc-1") == 0  # refused before any write
    finally:
        server.close()


def test_local_fsync_with_appendfsync_always_survives_sigkill(
    binary: str | Path, front: Front
) -> None:
    server = RedisServer(binary, config=ALWAYS)
    server.start()
    try:
        durability = Durability.local_fsync()
        with open_store(front, server.url, namespace="d", durability=durability) as store:
            result = store.append("Account", "acc-1", [Opened(owner="ann"), Deposited(amount=1)])
            assert (result.first_version, result.positions) == (1, (1, 2))
        server.restart(kill=True)  # SIGKILL: only what was fsynced survives
        with open_store(front, server.url, namespace="d") as reopened:
            assert reopened.version_of("Account", "acc-1") == 2
    finally:
        server.close()


def test_appendfsync_changed_after_connect_is_caught_on_the_next_write(
    binary: str | Path,
    front: Front,
) -> None:
    server = RedisServer(binary, config=ALWAYS)
    server.start()
    try:
        durability = Durability.local_fsync()
        with open_store(front, server.url, namespace="d", durability=durability) as store:
            store.append("Account", "acc-1", [Opened(owner="ann")], 0)
            store.client.config_set("appendfsync", "everysec")
            with pytest.raises(DurabilityError) as info:
                store.append("Account", "acc-1", [Deposited(amount=1)], 1)
            assert "appendfsync=everysec" in info.value.got
            assert "changed since the store connected" in str(info.value)
            assert store.version_of("Account", "acc-1") == 2  # written, not confirmed
            store.client.config_set("appendfsync", "always")
            assert store.append("Account", "acc-1", [Deposited(amount=1)], 2).first_version == 3
    finally:
        server.close()


def test_per_append_and_per_save_overrides(primary: RedisServer, front: Front) -> None:
    with open_store(front, primary.url, namespace="d") as store:  # the store waits for nothing
        assert store.durability == Durability.none()
        no_replica = Durability.on_replicas(1, timeout_ms=50)
        with pytest.raises(DurabilityError):
            store.append("Account", "acc-1", [Opened(owner="a")], 0, durability=no_replica)
        assert store.version_of("Account", "acc-1") == 1
        assert store.append("Account", "acc-1", [Deposited(amount=1)], 1).first_version == 2
        accounts = Repository(store, Account)
        account = Account(id="acc-2")
        account.open("bo")
        with pytest.raises(DurabilityError):
            accounts.save(account, durability=no_replica)
        account.deposit(1)
        with pytest.raises(ConfigurationError, match="local fsync"):
            accounts.save(account, durability=Durability.local_fsync())  # no AOF here
    # and the other way round: a waiting store, one append that does not wait
    waiting = Durability.on_replicas(1, timeout_ms=50)
    with open_store(front, primary.url, namespace="d", durability=waiting) as store:
        result = store.append("Account", "acc-3", [Opened(owner="c")], 0, durability=Durability())
        assert result.first_version == 1


def test_durable_append_reloads_the_script_after_a_flush(
    primary: RedisServer, front: Front
) -> None:
    """SCRIPT FLUSH (as after a restart): the waiting path reloads the script, appends once."""
    waiting = Durability.on_replicas(1, timeout_ms=50)  # no replica: the wait times out
    with open_store(front, primary.url, namespace="d") as store:
        store.append("Account", "flushed", [Opened(owner="a")], 0)
        store.client.script_flush()
        with pytest.raises(DurabilityError, match="replicas=0"):  # the wait ran after it
            store.append("Account", "flushed", [Deposited(amount=1)], 1, durability=waiting)
        assert [e.version for e in store.read("Account", "flushed")] == [1, 2]


# -- Redis 8 and Valkey 9 (WAITAOF) -------------------------------------------------------


@pytest.fixture(params=WITH_WAITAOF)
def waitaof_binary(request: pytest.FixtureRequest) -> str:
    """A server with WAITAOF."""
    return server_binary(request.param)


@pytest.mark.parametrize("appendfsync", ["always", "everysec"])
def test_waitaof_confirms_the_local_fsync(
    waitaof_binary: str, appendfsync: str, front: Front
) -> None:
    server = _server(waitaof_binary, appendonly="yes", appendfsync=appendfsync)
    try:
        durability = Durability.local_fsync(timeout_ms=5000)  # everysec: up to ~2 s
        with open_store(front, server.url, namespace="d", durability=durability) as store:
            assert store.server.has_waitaof
            result = store.append("Account", "acc-1", [Opened(owner="ann")], 0)
            assert result.positions == (1,)
        server.restart(kill=True)
        with open_store(front, server.url, namespace="d") as reopened:
            assert reopened.version_of("Account", "acc-1") == 1
    finally:
        server.close()


def test_waitaof_refuses_appendfsync_no(waitaof_binary: str, front: Front) -> None:
    server = _server(waitaof_binary, appendonly="yes", appendfsync="no")
    try:
        with pytest.raises(ConfigurationError, match="never fsyncs"):
            open_store(front, server.url, namespace="d", durability=Durability.local_fsync())
    finally:
        server.close()


def test_waitaof_with_replicas_that_fsync(waitaof_binary: str, front: Front) -> None:
    primary = _server(waitaof_binary, appendonly="yes", appendfsync="always")
    fsyncing = _replica_of(primary, waitaof_binary, appendonly="yes", appendfsync="always")
    try:
        wanted = Durability.on_replicas(1, fsync=True, timeout_ms=5000)
        with open_store(front, primary.url, namespace="d", durability=wanted) as store:
            assert store.append("Account", "acc-1", [Opened(owner="a")], 0).first_version == 1
            stream = store.keys.stream("Account", "acc-1")
            with closing(fsyncing.client()) as on_replica:
                assert on_replica.xlen(stream) == 1
            # write and WAITAOF go in two round trips: pipelined, the replica's fsync was
            # only acknowledged by its once-a-second REPLCONF ACK (~1 s per append)
            started = time.monotonic()
            for expected in range(10):
                store.append("Account", "acc-2", [Deposited(amount=1)], expected)
            assert time.monotonic() - started < 4
            store.client.script_flush()  # the two-round-trip path reloads the script too
            assert store.append("Account", "acc-2", [Deposited(amount=1)], 10).first_version == 11
            # a replica without an AOF acknowledges (WAIT) but never fsyncs (WAITAOF)
            with closing(fsyncing.client()) as on_replica:
                on_replica.config_set("appendonly", "no")
            quick = Durability.on_replicas(1, fsync=True, timeout_ms=300)
            with pytest.raises(DurabilityError) as info:
                store.append("Account", "acc-1", [Deposited(amount=1)], 1, durability=quick)
            assert "replica fsyncs=0" in info.value.got
            assert "local fsyncs=1" in info.value.got
            assert store.version_of("Account", "acc-1") == 2
            acked = store.append(
                "Account", "acc-1", [Deposited(amount=2)], 2, durability=Durability.on_replicas(1)
            )
            assert acked.first_version == 3
    finally:
        fsyncing.close()
        primary.close()
