"""Throwaway redis-server processes for tests: own port, own temp dir, stopped afterwards."""

from __future__ import annotations

import contextlib
import re
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


_PORT_TAKEN = re.compile(r"listening socket \S*:(\d+): bind: Address already in use")


class _PortTaken(RuntimeError):
    def __init__(self, port: int, message: str) -> None:
        super().__init__(message)
        self.port = port


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
        self._started = False  # once started, restarts keep the port

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

    def start(self, *, attempt: int = 1) -> None:
        """Start the server and wait until it answers."""
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
        try:
            self._wait_ready()
        except _PortTaken as taken:
            # free_port() only said the port was free a moment ago: a client connection
            # may have taken it since. A first start moves to another port (or cluster
            # bus port); a restart must keep its port, which clients know.
            if self._started or attempt >= 5:
                raise RuntimeError(str(taken)) from None
            self._move_off(taken.port)
            self.start(attempt=attempt + 1)
            return
        self._started = True

    def _move_off(self, port: int) -> None:
        if port == self.port:
            self.port = free_port()
        for name, value in self.config.items():
            if value == str(port):
                self.config[name] = str(free_port())

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
                self.process = None
                log = self.directory / "redis.log"
                text = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                message = f"redis-server exited on port {self.port}: {text}"
                taken = _PORT_TAKEN.search(text)
                if taken is not None:
                    raise _PortTaken(int(taken.group(1)), message)
                raise RuntimeError(message)
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
