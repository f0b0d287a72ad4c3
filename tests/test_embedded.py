"""The embedded server: data survives restarts and crashes; stores share it; it stops last."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventstore import ConfigurationError, EventStore, ExpectedVersion
from eventstore._redis.embedded import EmbeddedServer
from tests.domain import Deposited, Opened
from tests.servers import redis62_binary

ROOT = Path(__file__).resolve().parent.parent


def _pid(path: Path) -> int:
    return int((path / "redis.pid").read_text().strip())


def _alive(pid: int) -> bool:
    """Whether the process runs (a zombie init has not reaped yet is dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rpartition(")")[2].split()[:1] == ["Z"])


def _wait_dead(pid: int) -> None:
    deadline = time.monotonic() + 10
    while _alive(pid):
        assert time.monotonic() < deadline, f"redis-server {pid} still running"
        time.sleep(0.02)


@pytest.fixture(autouse=True)
def _no_server_left_behind(tmp_path: Path) -> Iterator[None]:
    # a failing test must not leave a daemonized redis-server running
    yield
    for pidfile in tmp_path.glob("*/redis.pid"):
        with contextlib.suppress(ValueError, ProcessLookupError):
            os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)


def _write_history(store: EventStore) -> None:
    store.append("Account", "acc-1", [Opened(owner="ann"), Deposited(amount=5)], 0)
    store.append("Account", "acc-2", [Opened(owner="bob")], ExpectedVersion.NO_STREAM)


def _assert_history(store: EventStore) -> None:
    assert [r.event for r in store.read("Account", "acc-1")] == [
        Opened(owner="ann"),
        Deposited(amount=5),
    ]
    assert [r.position for r in store.read("Account", "acc-2")] == [3]
    assert store.last_position(0) == 3


def test_data_survives_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "es"
    with EventStore.embedded(path, namespace="bank") as store:
        assert store.server.product == "Valkey"
        assert store.server.product_version[:2] == (9, 1)
        _write_history(store)
        pid = _pid(path)
    _wait_dead(pid)  # the last close shut the server down
    assert not EmbeddedServer(path)._answers()
    with EventStore.embedded(path, namespace="bank") as reopened:
        assert _pid(path) != pid
        _assert_history(reopened)
        assert reopened.append("Account", "acc-1", [Deposited(amount=1)], 2).first_version == 3


def test_data_survives_sigkill_with_appendfsync_always(tmp_path: Path) -> None:
    path = tmp_path / "es"
    store = EventStore.embedded(path, appendfsync="always")
    assert store.server.appendfsync == "always"
    _write_history(store)
    pid = _pid(path)
    os.kill(pid, signal.SIGKILL)  # no shutdown, no final fsync: only what "always" wrote
    _wait_dead(pid)
    store.close()  # nothing to shut down any more; must not fail
    with EventStore.embedded(path, appendfsync="always") as reopened:
        _assert_history(reopened)


def test_two_stores_share_one_server_until_the_last_closes(tmp_path: Path) -> None:
    path = tmp_path / "es"
    first = EventStore.embedded(path)
    second = EventStore.embedded(path)
    pid = _pid(path)
    _write_history(first)
    _assert_history(second)
    first.close()
    assert _alive(pid)  # the second store still uses it
    second.append("Account", "acc-3", [Opened(owner="cy")], 0)
    assert second.last_position(0) == 4
    second.close()
    _wait_dead(pid)


WRITER = """
import sys
from eventstore import EventStore
from tests.domain import Opened
with EventStore.embedded(sys.argv[1]) as store:
    store.append("Account", "from-child", [Opened(owner="child")], 0)
"""


def test_another_process_shares_the_server(tmp_path: Path) -> None:
    path = tmp_path / "es"
    with EventStore.embedded(path) as store:
        pid = _pid(path)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        subprocess.run(
            [sys.executable, "-c", WRITER, str(path)], check=True, env=env, cwd=ROOT, timeout=60
        )
        assert _alive(pid)
        assert _pid(path) == pid
        assert [r.event for r in store.read("Account", "from-child")] == [Opened(owner="child")]
    _wait_dead(pid)


def test_a_socket_path_too_long_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / ("d" * 120)
    with pytest.raises(ConfigurationError, match="too long for a Unix socket") as info:
        EventStore.embedded(path)
    assert str(path) in str(info.value)
    assert not path.exists()


def test_appendfsync_must_be_a_known_policy(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="appendfsync"):
        EventStore.embedded(tmp_path / "es", appendfsync="sometimes")


def test_async_embedded_store_shares_the_server_and_stops_it_last(tmp_path: Path) -> None:
    import asyncio

    from eventstore import AsyncEventStore

    path = tmp_path / "aio"

    async def main() -> int:
        first = await AsyncEventStore.embedded(path)
        second = EventStore.embedded(path)  # a sync store on the same server
        pid = _pid(path)
        await first.append("Account", "acc-1", [Opened(owner="ann"), Deposited(amount=5)], 0)
        second.append("Account", "acc-2", [Opened(owner="bob")], ExpectedVersion.NO_STREAM)
        await first.aclose()
        assert _alive(pid)  # the sync store still uses it
        second.close()
        _wait_dead(pid)
        async with await AsyncEventStore.embedded(path) as again:  # data survived
            assert [r.event for r in await again.read("Account", "acc-1")] == [
                Opened(owner="ann"),
                Deposited(amount=5),
            ]
            assert await again.version_of("Account", "acc-2") == 1
            return _pid(path)

    _wait_dead(asyncio.run(main()))


def test_a_stale_pid_file_naming_another_process_does_not_hold_up_the_start(
    tmp_path: Path,
) -> None:
    path = tmp_path / "es"
    with EventStore.embedded(path) as store:
        _write_history(store)
        pid = _pid(path)
    _wait_dead(pid)
    # after a crash and a reboot the recorded pid may be any live process's
    with subprocess.Popen(["sleep", "60"]) as other:
        try:
            (path / "redis.pid").write_text(f"{other.pid}\n")
            server = EmbeddedServer(path)
            assert not server._pid_alive()
            with EventStore.embedded(path) as reopened:
                _assert_history(reopened)
                assert _pid(path) != other.pid
        finally:
            other.kill()


@pytest.mark.parametrize("rewritten", [False, True], ids=["aof", "rdb-preamble"])
def test_a_directory_of_the_old_embedded_server_opens_with_its_data(
    tmp_path: Path, rewritten: bool
) -> None:
    path = tmp_path / "es"
    old = EmbeddedServer(path, binary=redis62_binary())  # the embedded server of 0.1
    old.ensure_running()
    with EventStore.from_url(old.url, namespace="bank") as store:
        assert store.server.version[:2] == (6, 2)
        _write_history(store)
        if rewritten:  # the AOF starts with an RDB, then more commands
            store.client.bgrewriteaof()
            _wait_rewritten(store)
            store.append("Account", "acc-1", [Deposited(amount=7)], 2)
    assert old.shutdown_if_unused("nobody-else")
    assert (path / "appendonly.aof").exists()
    with EventStore.embedded(path, namespace="bank") as reopened:
        assert reopened.server.product == "Valkey"
        assert [r.event for r in reopened.read("Account", "acc-2")] == [Opened(owner="bob")]
        assert reopened.version_of("Account", "acc-1") == (3 if rewritten else 2)
        reopened.append("Account", "acc-2", [Deposited(amount=1)], 1)
    # the single file became Valkey's AOF directory, which the next start reads
    assert (path / "appendonlydir").is_dir()
    with EventStore.embedded(path, namespace="bank") as again:
        assert again.version_of("Account", "acc-2") == 2


def test_an_rdb_file_alone_is_loaded_and_kept_in_the_aof(tmp_path: Path) -> None:
    source = tmp_path / "old"
    old = EmbeddedServer(source, binary=redis62_binary())
    old.ensure_running()
    with EventStore.from_url(old.url, namespace="bank") as store:
        _write_history(store)
        store.client.save()
    assert old.shutdown_if_unused("nobody-else")
    path = tmp_path / "es"
    path.mkdir()
    (path / "dump.rdb").write_bytes((source / "dump.rdb").read_bytes())
    with EventStore.embedded(path, namespace="bank") as moved:
        assert moved.server.appendonly == "yes"
        _assert_history(moved)
        moved.append("Account", "acc-2", [Deposited(amount=1)], 1)
    with EventStore.embedded(path, namespace="bank") as again:  # now from the AOF
        _assert_history_and_deposit(again)


def _assert_history_and_deposit(store: EventStore) -> None:
    assert [r.event for r in store.read("Account", "acc-2")] == [
        Opened(owner="bob"),
        Deposited(amount=1),
    ]
    assert store.last_position(0) == 4


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("appendonly.aof", b"*3\r\n$3\r\nSET\r\nthis is not a RESP file"),
        ("dump.rdb", b"REDIS0099garbage"),
    ],
    ids=["aof", "rdb"],
)
def test_data_the_server_cannot_read_is_refused_saying_how_to_move_it(
    tmp_path: Path, name: str, content: bytes
) -> None:
    path = tmp_path / "es"
    path.mkdir()
    (path / name).write_bytes(content)
    started = time.monotonic()
    with pytest.raises(ConfigurationError) as raised:
        EventStore.embedded(path)
    message = str(raised.value)
    assert str(path) in message
    assert "cannot load the data" in message
    assert "dump.rdb" in message
    assert time.monotonic() - started < 10  # a server that exited is not waited for
    assert (path / name).read_bytes() == content  # nothing overwritten or moved
    assert not (path / "appendonlydir").exists()  # a 6.2 server finds its file as it left it
    assert not list(path.glob("*.before-upgrade"))


def _wait_rewritten(store: EventStore) -> None:
    deadline = time.monotonic() + 10
    while store.client.info("persistence")["aof_rewrite_in_progress"]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
