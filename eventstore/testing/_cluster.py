"""A throwaway Redis Cluster: N primaries on free ports, slots spread by redis-cli."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from eventstore.testing._servers import RedisServer, free_port

__all__ = ["RedisClusterServers"]


class RedisClusterServers:
    """``primaries`` cluster-enabled redis-servers joined into one cluster (no replicas)."""

    def __init__(self, primaries: int = 3, binary: str | Path = "redis-server") -> None:
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
            for i in range(primaries)
        ]

    @property
    def url(self) -> str:
        """A ``redis+cluster://`` URL that ``EventStore.from_url`` understands."""
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.close()  # never leave half a cluster running
            raise

    def _start(self) -> None:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *addresses,
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self._wait_ok()

    def close(self) -> None:
        for node in self.nodes:
            node.close()

    def flush(self) -> None:
        for node in self.nodes:
            client = node.client()
            try:
                client.flushall()
            finally:
                client.close()

    def _wait_ok(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            states = []
            for node in self.nodes:
                client = node.client()
                try:
                    info = client.execute_command("CLUSTER", "INFO")  # type: ignore[no-untyped-call]
                finally:
                    client.close()
                text = info.decode() if isinstance(info, bytes) else str(info)
                states.append("cluster_state:ok" in text)
            if all(states):
                return
            time.sleep(0.1)
        raise RuntimeError("cluster did not reach cluster_state:ok")
