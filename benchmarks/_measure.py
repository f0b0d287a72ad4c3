"""Timing primitives: percentiles, rates, and runs that take turns.

The machine is shared: contenders of one comparison take turns run after run, so a busy
second is spread over ours and the baseline alike instead of being charged to one of them.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Figures", "Stat", "elapsed", "percentile", "rate", "take_turns"]

Figures = Mapping[str, float]
"""What one run of a contender measured: figure name -> value (``{"p50": 151.0}``)."""


@dataclass(frozen=True)
class Stat:
    """The median of several runs with the lowest and highest run."""

    median: float
    low: float
    high: float
    runs: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat:
        """The statistic of ``values`` (one per run; at least one)."""
        if not values:
            raise ValueError("a statistic needs at least one run")
        return cls(statistics.median(values), min(values), max(values), len(values))

    def as_json(self) -> dict[str, float]:
        """``{"median", "min", "max", "runs"}``."""
        return {"median": self.median, "min": self.low, "max": self.high, "runs": self.runs}


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, interpolated between neighbours."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values to take a percentile of")
    rank = (len(ordered) - 1) * q / 100
    below = int(rank)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (rank - below)


def elapsed(fn: Callable[[], object]) -> float:
    """Seconds taken by one call of ``fn``."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def rate(count: int, fn: Callable[[], object]) -> float:
    """Items per second of one call of ``fn`` that handles ``count`` items."""
    return count / elapsed(fn)


def take_turns(
    runs: int, contenders: Mapping[str, Callable[[], Figures]]
) -> dict[str, dict[str, Stat]]:
    """Run every contender ``runs`` times, taking turns; each run returns its figures.

    Returns contender -> figure name -> ``Stat`` over the runs.
    """
    seen: dict[str, dict[str, list[float]]] = {name: {} for name in contenders}
    for _ in range(runs):
        for name, run in contenders.items():
            # Each contender starts with a clean heap: the data every contender set up
            # (eventsourcing's in-memory stores hold whole histories) is moved out of the
            # cyclic collector's reach, so no one pays for traversing another's objects.
            gc.collect()
            gc.freeze()
            for figure, value in run().items():
                seen[name].setdefault(figure, []).append(value)
    return {
        name: {figure: Stat.of(values) for figure, values in figures.items()}
        for name, figures in seen.items()
    }
