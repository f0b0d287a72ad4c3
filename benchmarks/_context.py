"""What every workload gets: the sizes, the servers, fresh stores and clients, cleanup.

Each workload opens its stores in a namespace of its own; with ``--url`` everything a run
wrote (its namespaces and raw keys) is deleted at the end, so a shared server is left as
it was found.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis

from benchmarks._esbackends import EsBackend
from benchmarks._measure import Figures, Stat
from benchmarks._results import Row
from benchmarks._servers import Servers
from benchmarks._sizes import Sizes
from eventstore import EventStore

__all__ = ["Bench", "Run"]

Run = Callable[[], Figures]
"""One run of one contender: does the work once and returns what it measured."""


@dataclass
class Bench:
    """The sizes, servers and eventsourcing backends of this run, plus what it opened."""

    sizes: Sizes
    servers: Servers
    backends: list[EsBackend]
    reduced: Mapping[str, str]
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    _stores: list[EventStore] = field(default_factory=list)
    _clients: list[redis.Redis] = field(default_factory=list)
    _namespaces: list[tuple[str, str]] = field(default_factory=list)

    def store(self, url: str | None = None, **options: Any) -> EventStore:
        """An ``EventStore`` on a namespace of its own (on the recommended server by default)."""
        url = url or self.servers.recommended
        namespace = self.namespace(url)
        store = EventStore.from_url(url, namespace=namespace, socket_timeout=60, **options)
        self._stores.append(store)
        return store

    def namespace(self, url: str | None = None) -> str:
        """A fresh namespace on ``url`` (the recommended server by default), deleted at the
        end with ``--url``: for a store the caller opens and closes itself."""
        namespace = f"bench{self.run_id}n{len(self._namespaces)}"
        self._namespaces.append((url or self.servers.recommended, namespace))
        return namespace

    def client(self, url: str | None = None) -> redis.Redis:
        """A plain redis-py client (hiredis parser when installed, as ours uses)."""
        client = redis.Redis.from_url(url or self.servers.recommended, socket_timeout=60)
        self._clients.append(client)
        return client

    def raw_key(self, what: str) -> str:
        """A key for a raw baseline, unique to this run."""
        return f"benchraw{self.run_id}:{what}:{uuid.uuid4().hex[:8]}"

    def note(self, *size_names: str) -> str:
        """ "reduced: ..." for those of ``size_names`` this mode shrank, else ""."""
        shrunk = [f"{name} {self.reduced[name]}" for name in size_names if name in self.reduced]
        return "reduced: " + "; ".join(shrunk) if shrunk else ""

    def available_backends(self) -> Iterator[EsBackend]:
        """The eventsourcing backends that can run here."""
        return (backend for backend in self.backends if backend.available)

    def close(self) -> None:
        """Close every store and client; on a server we did not start, delete our keys."""
        for store in self._stores:
            store.close()
        if not self.servers.own:
            self._clean_up()
        for client in self._clients:
            client.close()

    def _clean_up(self) -> None:
        urls = {url for url, _ in self._namespaces} | {self.servers.recommended}
        for url in urls:
            client = redis.Redis.from_url(url)
            patterns = [
                f"{{bench{self.run_id}*",
                f"bench{self.run_id}*",
                f"benchraw{self.run_id}:*",
            ]
            for pattern in patterns:
                keys = list(client.scan_iter(match=pattern, count=1000))
                for start in range(0, len(keys), 500):
                    client.delete(*keys[start : start + 500])
            client.close()

    def es_rows(  # noqa: PLR0917 - the fields of the rows it builds, in Row's order
        self,
        key: str,
        workload: int,
        measure: str,
        unit: str,
        ours: Stat,
        theirs: Mapping[str, Stat],
        *,
        note: str = "",
        missing: str = "",
        ours_name: str = "ours",
    ) -> list[Row]:
        """Ours next to each eventsourcing backend (``theirs`` by backend name).

        A backend that cannot run here says why; one that ran but has no figure in
        ``theirs`` gets ``missing`` as its note. ``ours_name`` says what "ours" is (a raw
        redis-py figure, for the rows that show the ceiling a Redis client can reach).
        """
        rows = []
        for backend in self.backends:
            if not backend.available:
                why = backend.unavailable
            elif backend.name not in theirs:
                why = missing
            else:
                why = note
            rows.append(
                Row(
                    f"{key}.{backend.name}",
                    workload,
                    measure,
                    unit,
                    ours,
                    f"eventsourcing {backend.name}",
                    theirs.get(backend.name),
                    ours_name=ours_name,
                    note=why,
                )
            )
        return rows
