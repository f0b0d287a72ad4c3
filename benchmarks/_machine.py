"""What the figures were measured on: CPU, cores, Python, and every relevant version."""

from __future__ import annotations

import os
import platform
import sqlite3
from importlib import metadata
from pathlib import Path
from typing import Any

import redis

__all__ = ["machine"]


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine(redis_url: str, postgres: str) -> dict[str, str]:
    """The machine and versions, as strings (``postgres``: its version or why not)."""
    client = redis.Redis.from_url(redis_url)
    try:
        info: dict[str, Any] = client.info("server")
    finally:
        client.close()
    return {
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count()),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "redis_server": _server_name(info),
        "redis_py": _version("redis"),
        "hiredis": _version("hiredis"),
        "pydantic": _version("pydantic"),
        "eventsourcing": _version("eventsourcing"),
        "psycopg": _version("psycopg"),
        "sqlite": sqlite3.sqlite_version,
        "postgres": postgres,
    }


def _server_name(info: dict[str, object]) -> str:
    """``7.0.15``, or ``Valkey 9.1.2 (as Redis 7.2.4)`` for a server that says so."""
    redis_version = str(info.get("redis_version"))
    valkey = info.get("valkey_version")
    return f"Valkey {valkey} (as Redis {redis_version})" if valkey else redis_version
