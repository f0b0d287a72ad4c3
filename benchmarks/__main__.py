"""Run the ten workloads of the first round, the asyncio front's (11) and many live feeds' (12):
``python -m benchmarks [--full | --smoke] [--url URL]``.

Starts two redis-server processes (recommended settings, and Redis's defaults for the
memory workload) unless ``--url`` names one to use, runs every workload with its raw
redis-py and eventsourcing baselines taking turns, prints the markdown table, and writes
``latest.md`` and ``latest.json`` under ``--out`` (default ``benchmarks/results``).
``--docs`` also replaces the results in ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shlex
import sys
import time
import traceback
from pathlib import Path

from benchmarks._context import Bench
from benchmarks._esbackends import es_backends, postgres_version
from benchmarks._machine import machine
from benchmarks._render import markdown
from benchmarks._results import Report, Row
from benchmarks._servers import servers
from benchmarks._sizes import FULL, MODES
from benchmarks._targets import judge

ROOT = Path(__file__).resolve().parent.parent
MODULES = ("writes", "loads", "catchup", "live", "groups", "memory", "async", "fanout")
DOCS_BEGIN, DOCS_END = "<!-- results:begin -->", "<!-- results:end -->"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--full",
        action="store_const",
        const="full",
        dest="mode",
        help="the full sizes everywhere, 5 runs per figure",
    )
    mode.add_argument(
        "--smoke",
        action="store_const",
        const="smoke",
        dest="mode",
        help="tiny sizes, 1 run: checks the harness, figures mean nothing",
    )
    parser.set_defaults(mode="quick")
    parser.add_argument("--url", help="measure on this server instead of starting two")
    parser.add_argument(
        "--server",
        choices=("redis", "valkey"),
        default="redis",
        help="the servers to start: redis-server from PATH, or the embedded Valkey",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=MODULES,
        help="run only these groups of workloads (repeatable)",
    )
    parser.add_argument(
        "--no-postgres", action="store_true", help="leave out the eventsourcing PostgreSQL baseline"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "benchmarks" / "results",
        help="directory for latest.md and latest.json",
    )
    parser.add_argument(
        "--docs", action="store_true", help="also put the results into docs/performance.md"
    )
    return parser


def _measure(bench: Bench, names: list[str], failures: dict[str, str]) -> list[Row]:
    """Every row of the named groups; a group that fails is reported, the others still run."""
    rows: list[Row] = []
    for name in names:
        started = time.perf_counter()
        print(f"- {name} ...", flush=True)
        module = importlib.import_module(f"benchmarks.bench_{name}")
        try:
            rows += module.run(bench)
        except Exception as exc:  # one broken workload must not lose the others' figures
            traceback.print_exc()
            failures[name] = f"{type(exc).__name__}: {exc}"
        print(f"  {name}: {time.perf_counter() - started:.0f} s", flush=True)
    return rows


def _write(report: Report, text: str, out: Path, docs: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.md").write_text(text)
    (out / "latest.json").write_text(json.dumps(report.as_json(), indent=2) + "\n")
    if docs:
        page = ROOT / "docs" / "performance.md"
        before, _, rest = page.read_text().partition(DOCS_BEGIN)
        _, _, after = rest.partition(DOCS_END)
        page.write_text(f"{before}{DOCS_BEGIN}\n{text}{DOCS_END}{after}")


def _binary(server: str) -> str:
    if server == "valkey":
        from eventstore._redis.embedded import embedded_binary

        return str(embedded_binary())
    return "redis-server"


def main(argv: list[str] | None = None) -> None:
    """Parse the options, measure, print and write the report."""
    args = _parser().parse_args(argv)
    sizes = MODES[args.mode]
    names = [name for name in MODULES if not args.only or name in args.only]
    command = "python -m benchmarks " + shlex.join(argv if argv is not None else sys.argv[1:])
    started = time.perf_counter()
    postgres = "not measured (--no-postgres)" if args.no_postgres else postgres_version()
    with servers(args.url, _binary(args.server)) as started_servers:
        bench = Bench(
            sizes,
            started_servers,
            es_backends(postgres=not args.no_postgres),
            sizes.reduced_from(FULL),
        )
        try:
            report = Report(
                args.mode, command.strip(), machine(started_servers.recommended, postgres)
            )
            report.rows = _measure(bench, names, report.failures)
        finally:
            bench.close()
    report.targets = judge(report, sizes.histories)
    report.seconds = time.perf_counter() - started
    text = markdown(report)
    print(text)
    if report.failures:  # partial figures are printed above, never saved as the latest
        sys.exit(f"failed: {', '.join(report.failures)} (see the tracebacks above)")
    _write(report, text, args.out, args.docs)


if __name__ == "__main__":
    main()
