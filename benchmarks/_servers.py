"""The Redis servers a run measures on: started here, or the one given with ``--url``.

Workloads 1-9 run on a server with the settings our docs recommend (the ones
``eventstore doctor`` checks and docker-compose.yml sets): AOF on with ``appendfsync
everysec``, ``maxmemory-policy noeviction``, ``stream-node-max-bytes 512``. Workload 10
also runs on a server with Redis's defaults for what matters to memory
(``stream-node-max-bytes 4096``, no AOF). RDB saving is off on both so that no fork
lands in a measurement.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from eventstore.testing import RedisServer

__all__ = ["DEFAULT_SETTINGS", "RECOMMENDED_SETTINGS", "Servers", "servers"]

RECOMMENDED_SETTINGS = {
    "appendonly": "yes",
    "appendfsync": "everysec",
    "maxmemory-policy": "noeviction",
    "stream-node-max-bytes": "512",
    "save": '""',
}
DEFAULT_SETTINGS = {
    "appendonly": "no",
    "maxmemory-policy": "noeviction",
    "stream-node-max-bytes": "4096",
    "save": '""',
}


@dataclass(frozen=True)
class Servers:
    """``recommended``: the URL most workloads use; ``default``: Redis defaults, if started.

    ``own`` says the servers were started by this run (so nothing needs cleaning up).
    """

    recommended: str
    default: str | None
    own: bool


@contextlib.contextmanager
def servers(url: str | None, binary: str = "redis-server") -> Iterator[Servers]:
    """Start both servers of ``binary`` (or use ``url`` alone) and stop them on exit."""
    if url is not None:
        yield Servers(recommended=url, default=None, own=False)
        return
    started: list[RedisServer] = []
    try:
        for config in (RECOMMENDED_SETTINGS, DEFAULT_SETTINGS):
            server = RedisServer(binary, config=config)
            started.append(server)
            server.start()
        yield Servers(recommended=started[0].url, default=started[1].url, own=True)
    finally:
        for server in started:
            server.close()
