"""Throwaway redis-server processes for tests: own port, own temp dir, stopped afterwards."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import redis

__all__ = ["RedisServer", "free_port", "redis_server"]


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """A redis-server child process on 127.0.0.1 with its data under a temp directory.

    ``config`` adds or overrides directives (``{"appendonly": "yes"}``). ``restart()``
    stops and starts it on the same port and directory, so AOF data survives.
    """

    def __init__(
        self,
        binary: str | Path = "redis-server",
        *,
        config: Mapping[str, str] | None = None,
        directory: Path | None = None,
    ) -> None:
        self.binary = str(binary)
        self.port = free_port()
        self._own_dir = directory is None
        self.directory = directory or Path(tempfile.mkdtemp(prefix="es-redis-"))
        self.config = {
            "save": '""',
            "appendonly": "no",
            "stream-node-max-bytes": "512",
            "maxmemory-policy": "noeviction",
            **(config or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--logfile",
            str(self.directory / "redis.log"),
        ]
        for name, value in self.config.items():
            args += [f"--{name}", *value.split(" ")] if value != '""' else [f"--{name}", ""]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_ready()

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server: SIGTERM (clean shutdown) or, with ``kill``, SIGKILL."""
        if self.process is None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        self.process.wait(timeout=30)
        self.process = None

    def restart(self, *, kill: bool = False) -> None:
        self.stop(kill=kill)
        self.start()

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                log = self.directory / "redis.log"
                text = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(f"redis-server exited on port {self.port}: {text}")
            try:
                with contextlib.closing(self.client()) as client:
                    if client.ping():
                        return
            except (redis.ConnectionError, redis.BusyLoadingError):
                time.sleep(0.02)
        raise RuntimeError(f"redis-server on port {self.port} did not become ready")


@contextlib.contextmanager
def redis_server(binary: str | Path = "redis-server", **config: str) -> Iterator[RedisServer]:
    """Start a server for the duration of a ``with`` block."""
    server = RedisServer(binary, config={k.replace("_", "-"): v for k, v in config.items()})
    server.start()
    try:
        yield server
    finally:
        server.close()
