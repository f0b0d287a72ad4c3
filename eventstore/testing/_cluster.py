"""A throwaway Redis Cluster: N primaries (and replicas) on free ports, made by redis-cli."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis

from eventstore.testing._servers import RedisServer, free_port

__all__ = ["RedisClusterServers"]

READY_SECONDS = 60.0


class RedisClusterServers:
    """``primaries`` cluster-enabled redis-servers joined into one cluster, each with
    ``replicas`` replicas (``redis-cli --cluster create --cluster-replicas``).

    ``start()`` returns once every node agrees the cluster is ok and every replica is
    connected to its primary and in sync. ``cluster-node-timeout`` is 2 s, so a killed
    primary's replica is promoted within a few seconds.
    """

    def __init__(
        self, primaries: int = 3, binary: str | Path = "redis-server", *, replicas: int = 0
    ) -> None:
        self.primary_count = primaries
        self.replicas = replicas
        self.nodes = [
            RedisServer(
                binary,
                config={
                    "cluster-enabled": "yes",
                    "cluster-node-timeout": "2000",
                    # the default bus port (port + 10000) can overflow
                    "cluster-port": str(free_port()),
                    "cluster-config-file": f"nodes-{i}.conf",
                },
            )
            for i in range(primaries * (1 + replicas))
        ]

    @property
    def url(self) -> str:
        """A ``redis+cluster://`` URL that ``EventStore.from_url`` understands."""
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    @property
    def seed_url(self) -> str:
        """A plain ``redis://`` URL of one node, for ``from_url(..., cluster=True)``."""
        return f"redis://127.0.0.1:{self.nodes[0].port}"

    def start(self) -> None:
        """Start every node, create the cluster, wait until it is ready."""
        try:
            self._start()
        except BaseException:
            self.close()  # never leave half a cluster running
            raise

    def _start(self) -> None:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        create = ["redis-cli", "--cluster", "create", *addresses]
        create += ["--cluster-replicas", str(self.replicas), "--cluster-yes"]
        subprocess.run(create, check=True, capture_output=True, timeout=60)
        self.wait_ready()

    def close(self) -> None:
        """Stop every node and delete its directory."""
        for node in self.nodes:
            node.close()

    def flush(self) -> None:
        """FLUSHALL on every primary (replicas follow)."""
        for node in self.primaries():
            with contextlib.closing(node.client()) as client:
                client.flushall()

    def node_at(self, port: int) -> RedisServer:
        """The server listening on ``port``."""
        return next(node for node in self.nodes if node.port == port)

    def primaries(self) -> list[RedisServer]:
        """The running nodes that are primaries right now (roles change on failover)."""
        return [node for node in self._running() if self._role(node) == "master"]

    def replicas_of(self, primary: RedisServer) -> list[RedisServer]:
        """The running nodes replicating ``primary`` right now."""
        found = []
        for node in self._running():
            info = self._info(node)
            if info.get("role") == "slave" and int(info.get("master_port", 0)) == primary.port:
                found.append(node)
        return found

    def wait_ready(self, timeout: float = READY_SECONDS) -> None:
        """Until every running node says ``cluster_state:ok`` and knows every slot's
        owner, and every running replica is connected and in sync with its primary."""
        _wait(self._ready, timeout, "cluster did not become ready (state ok, replicas in sync)")

    def _ready(self) -> bool:
        running = self._running()
        if not all(self._cluster_ok(node) for node in running):
            return False
        replicas = [node for node in running if self._role(node) == "slave"]
        # every running node that is no primary of a slot range must be a synced replica
        # (after a failover, a primary has none until its dead node returns)
        expected = len(running) - self.primary_count
        return len(replicas) >= expected and all(self._in_sync(node) for node in replicas)

    def _running(self) -> list[RedisServer]:
        return [node for node in self.nodes if node.process is not None]

    def _cluster_ok(self, node: RedisServer) -> bool:
        with contextlib.closing(node.client()) as client:
            info = client.execute_command("CLUSTER", "INFO")  # type: ignore[no-untyped-call]
        text = info.decode() if isinstance(info, bytes) else str(info)
        return "cluster_state:ok" in text

    def _info(self, node: RedisServer) -> dict[str, str]:
        with contextlib.closing(node.client()) as client:
            try:
                raw = client.info("replication")
            except redis.RedisError:
                return {}
        return {str(name): str(value) for name, value in raw.items()}

    def _role(self, node: RedisServer) -> str:
        return self._info(node).get("role", "")

    def _in_sync(self, replica: RedisServer) -> bool:
        # linked, and done loading its primary's snapshot: from here on it follows the
        # primary's stream (asynchronously, so under writes the offsets never match)
        info = self._info(replica)
        return info.get("master_link_status") == "up" and info.get("master_sync_in_progress") == "0"


def _wait(ready: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except redis.RedisError:
            pass  # a node still starting or failing over: look again
        time.sleep(0.1)
    raise RuntimeError(message)
