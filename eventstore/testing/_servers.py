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

import attrs
import redis

__all__ = ["RedisServer", "TlsFiles", "free_port", "redis_server"]


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@attrs.frozen
class TlsFiles:
    """PEM files for a TLS-only server: its certificate and key, and the CA that signed
    the client certificates it accepts (``tls-auth-clients yes``)."""

    cert: Path
    key: Path
    ca: Path


class RedisServer:
    """A redis-server child process on 127.0.0.1 with its data under a temp directory.

    ``config`` adds or overrides directives (``{"appendonly": "yes"}``). ``restart()``
    stops and starts it on the same port and directory, so AOF data survives. With
    ``tls`` it listens with TLS only (``port 0``, ``tls-port``), ``url`` is ``rediss://``
    and ``client_tls`` (client certificate, key and CA) is what ``client()`` and the
    readiness check connect with.
    """

    def __init__(
        self,
        binary: str | Path = "redis-server",
        *,
        config: Mapping[str, str] | None = None,
        directory: Path | None = None,
        tls: TlsFiles | None = None,
        client_tls: TlsFiles | None = None,
    ) -> None:
        self.binary = str(binary)
        self.tls = tls
        self.client_tls = client_tls
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
        scheme = "rediss" if self.tls is not None else "redis"
        return f"{scheme}://127.0.0.1:{self.port}/0"

    def _listen_args(self) -> list[str]:
        if self.tls is None:
            return ["--port", str(self.port)]
        return [
            "--port", "0",
            "--tls-port", str(self.port),
            "--tls-cert-file", str(self.tls.cert),
            "--tls-key-file", str(self.tls.key),
            "--tls-ca-cert-file", str(self.tls.ca),
            "--tls-auth-clients", "yes",
        ]  # fmt: skip

    def start(self) -> None:
        args = [
            self.binary,
            *self._listen_args(),
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
        if self.tls is None:
            return redis.Redis.from_url(self.url)
        files = self.client_tls
        options = (
            {"ssl_certfile": str(files.cert), "ssl_keyfile": str(files.key),
             "ssl_ca_certs": str(files.ca)}
            if files is not None
            else {}
        )  # fmt: skip
        return redis.Redis.from_url(self.url, **options)

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
