"""What every benchmark shares: timing, percentiles, and the side-by-side report.

Every figure is printed next to the raw redis-py baseline measured in the same run on
the same server, with the ratio; nothing here is asserted in tests.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["Comparison", "latencies", "percentile", "print_report", "rate"]


@dataclass(frozen=True)
class Comparison:
    """One measured figure of ours next to its raw redis-py baseline.

    ``unit`` ending in "/s" means higher is better (throughput); otherwise lower is
    better (latency). ``ratio`` is always ours / baseline.
    """

    name: str
    ours: float
    baseline: float
    unit: str
    baseline_name: str

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline if self.baseline else float("nan")


def latencies(fn: Callable[[], object], n: int, warmup: int = 20) -> list[float]:
    """Seconds per call of ``fn``, ``n`` times after ``warmup`` unmeasured calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def rate(count: int, fn: Callable[[], object]) -> float:
    """Items per second of one call of ``fn`` that processes ``count`` items."""
    start = time.perf_counter()
    fn()
    return count / (time.perf_counter() - start)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[max(0, min(98, int(q) - 1))]


def print_report(title: str, rows: Sequence[Comparison]) -> None:
    """Print ours, the baseline and the ratio, one row per comparison."""
    print(f"\n== {title}")
    print(f"{'measure':44} {'ours':>12} {'baseline':>12} {'unit':>7} {'ratio':>7}  baseline is")
    for row in rows:
        print(
            f"{row.name:44} {row.ours:12.1f} {row.baseline:12.1f} {row.unit:>7} "
            f"{row.ratio:7.2f}  {row.baseline_name}"
        )
