"""The append script's own connection (its *line*, see ``HotScript``): threads that find
it busy fall back to the pool, a forked child takes its own, a line the server closed
reconnects, a small or blocking pool lends none, and closing gives it back."""

from __future__ import annotations

import os
import threading

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from eventstore import AppendResult, EventStore
from tests.domain import Deposited, Opened


def _deposits(store: EventStore, aggregate_id: str, count: int) -> list[AppendResult]:
    results = [store.append("Account", aggregate_id, [Opened(owner="o")], 0)]
    results += (
        store.append("Account", aggregate_id, [Deposited(amount=1)], version)
        for version in range(1, count)
    )
    return results


def test_threads_appending_at_once_each_get_their_own_replies(
    redis_url: str, namespace: str
) -> None:
    with EventStore.from_url(redis_url, namespace=namespace, partitions=1) as store:
        results: dict[str, list[AppendResult]] = {}

        def run(name: str) -> None:
            results[name] = _deposits(store, name, 60)

        threads = [threading.Thread(target=run, args=(f"t{n}",)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sorted(results) == [f"t{n}" for n in range(8)]
        for name, appended in results.items():  # a reply crossed over would show here
            assert [r.first_version for r in appended] == list(range(1, 61))
            assert store.version_of("Account", name) == 60
        appended_all = [r for appended in results.values() for r in appended]
        positions = sorted(p for r in appended_all for p in r.positions)
        assert positions == list(range(1, 481))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_appends_on_a_line_of_its_own(redis_url: str, namespace: str) -> None:
    with EventStore.from_url(redis_url, namespace=namespace) as store:
        _deposits(store, "parent", 5)  # the parent holds its line now
        pid = os.fork()
        if pid == 0:  # the child: its own line, or the two would read each other's replies
            code = 1
            try:
                appended = _deposits(store, "child", 30)
                code = 0 if [r.first_version for r in appended] == list(range(1, 31)) else 2
            finally:
                os._exit(code)
        for version in range(5, 35):
            store.append("Account", "parent", [Deposited(amount=1)], version)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert store.version_of("Account", "parent") == 35
        assert store.version_of("Account", "child") == 30


def test_a_line_the_server_closed_reconnects_even_without_retries(
    redis_url: str, namespace: str
) -> None:
    client = redis.Redis.from_url(redis_url, retry=Retry(NoBackoff(), 0))  # no retries
    killer = redis.Redis.from_url(redis_url)
    try:
        store = EventStore.open(client, namespace=namespace)
        _deposits(store, "idle", 3)
        for version in range(3, 6):  # killed right before the append, as the pool would see
            assert killer.client_kill_filter(_type="normal", skipme=True) >= 1
            result = store.append("Account", "idle", [Deposited(amount=1)], version)
            assert (result.first_version, result.duplicate) == (version + 1, False)
        assert store.version_of("Account", "idle") == 6
    finally:
        killer.close()
        client.close()


@pytest.mark.parametrize("blocking", [False, True], ids=["small-pool", "blocking-pool"])
def test_a_small_or_blocking_pool_lends_no_line(
    redis_url: str, namespace: str, *, blocking: bool
) -> None:
    pool_class = redis.BlockingConnectionPool if blocking else redis.ConnectionPool
    pool = pool_class.from_url(redis_url, max_connections=2)
    client = redis.Redis(connection_pool=pool)
    errors: list[BaseException] = []
    try:
        store = EventStore.open(client, namespace=namespace)

        def run(name: str) -> None:  # two threads: both connections in use at times
            try:
                for version in range(40):
                    event = Opened(owner="o") if version == 0 else Deposited(amount=1)
                    store.append("Account", name, [event], version)
                    store.load("Account", name)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(f"s{n}",)) for n in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        assert [store.version_of("Account", f"s{n}") for n in range(2)] == [40, 40]
    finally:
        client.close()


def test_closing_the_store_gives_the_line_back(redis_url: str, namespace: str) -> None:
    client = redis.Redis.from_url(redis_url)
    pool = client.connection_pool
    try:
        store = EventStore.open(client, namespace=namespace)
        _deposits(store, "held", 3)
        assert len(pool._in_use_connections) == 1  # the line, between appends
        store.close()
        assert len(pool._in_use_connections) == 0
        assert client.ping()  # the caller's client still works
    finally:
        client.close()
