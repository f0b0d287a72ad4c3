"""Run every benchmark on one throwaway redis-server: ``python -m benchmarks [--url URL]``.

Each ``benchmarks/bench_*.py`` module has ``run(url: str) -> None`` printing its report.
Pass ``--only NAME`` to run one module (``--only append``).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil

import benchmarks
from eventstore.testing import RedisServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="use this server instead of starting redis-server")
    parser.add_argument("--only", action="append", help="run only bench_<ONLY>.py")
    args = parser.parse_args()
    names = sorted(
        m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_")
    )
    if args.only:
        names = [n for n in names if n.removeprefix("bench_") in args.only]
    server = None
    url = args.url
    if url is None:
        server = RedisServer("redis-server")
        server.start()
        url = server.url
    try:
        for name in names:
            module = importlib.import_module(f"benchmarks.{name}")
            module.run(url)
    finally:
        if server is not None:
            server.close()


if __name__ == "__main__":
    main()
