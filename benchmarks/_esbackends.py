"""The eventsourcing library's persistence modules the benchmark compares with.

- ``popo``: plain Python objects in memory (no I/O at all);
- ``sqlite``: a database file in a temp directory (the realistic embedded choice; the
  library puts it in WAL mode);
- ``postgres``: a PostgreSQL server at 127.0.0.1:5432 (user ``postgres``, trust auth,
  database ``test``), in a schema of our own that is dropped before and after.

``EsBackend.session()`` hands out applications on fresh storage and removes it on exit.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from eventsourcing.application import Application

__all__ = ["EsBackend", "MakeApp", "es_backends", "postgres_version", "sessions"]

PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=2"
PG_SCHEMA = "redis_eventstore_bench"

AppT = TypeVar("AppT", bound=Application[Any])


class MakeApp(Protocol):
    """Builds an application of the given class on the session's storage."""

    def __call__(self, cls: type[AppT], /) -> AppT: ...


@dataclass
class EsBackend:
    """One persistence module: ``name``, whether it can run here, and why not."""

    name: str
    module: str
    unavailable: str = ""

    @property
    def available(self) -> bool:
        return not self.unavailable

    @contextlib.contextmanager
    def session(self) -> Iterator[MakeApp]:
        """Applications on storage of their own, closed and removed on exit."""
        apps: list[Application[Any]] = []
        directory = Path(tempfile.mkdtemp(prefix="es-bench-"))
        if self.name == "postgres":
            _reset_schema()

        def make(cls: type[AppT], /) -> AppT:
            app = cls(env=self._env(directory, cls.name))
            apps.append(app)
            return app

        try:
            yield make
        finally:
            for app in apps:
                app.close()
            shutil.rmtree(directory, ignore_errors=True)
            if self.name == "postgres":
                _drop_schema()

    def _env(self, directory: Path, app_name: str) -> dict[str, str]:
        env = {"PERSISTENCE_MODULE": self.module}
        if self.name == "sqlite":
            env["SQLITE_DBNAME"] = str(directory / f"{app_name}-{uuid.uuid4().hex[:6]}.db")
        elif self.name == "postgres":
            env |= {
                "POSTGRES_DBNAME": "test",
                "POSTGRES_HOST": "127.0.0.1",
                "POSTGRES_PORT": "5432",
                "POSTGRES_USER": "postgres",
                "POSTGRES_PASSWORD": "",
                "POSTGRES_SCHEMA": PG_SCHEMA,
            }
        return env


def _connect() -> Any:
    import psycopg

    return psycopg.connect(PG_DSN, autocommit=True)


def _reset_schema() -> None:
    with _connect() as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE")
        conn.execute(f"CREATE SCHEMA {PG_SCHEMA}")


def _drop_schema() -> None:
    with _connect() as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE")


def postgres_version() -> str:
    """The PostgreSQL server's version, or why it cannot be used."""
    try:
        with _connect() as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return f"PostgreSQL {row[0]}"
    except Exception as exc:  # any failure means: not reachable from here
        return f"not reachable ({type(exc).__name__}: {str(exc).strip()[:80]})"


def es_backends(*, postgres: bool) -> list[EsBackend]:
    """POPO, SQLite, and PostgreSQL (marked unavailable if off or not reachable)."""
    backends = [
        EsBackend("popo", "eventsourcing.popo"),
        EsBackend("sqlite", "eventsourcing.sqlite"),
    ]
    pg = EsBackend("postgres", "eventsourcing.postgres")
    if not postgres:
        pg.unavailable = "not measured (--no-postgres)"
    else:
        version = postgres_version()
        if version.startswith("not reachable"):
            pg.unavailable = version
    backends.append(pg)
    return backends


@contextlib.contextmanager
def sessions(backends: Sequence[EsBackend]) -> Iterator[dict[str, MakeApp]]:
    """A session on each available backend, by name, all closed on exit."""
    with contextlib.ExitStack() as stack:
        yield {b.name: stack.enter_context(b.session()) for b in backends if b.available}
