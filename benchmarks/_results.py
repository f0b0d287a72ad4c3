"""What a benchmark run produces: rows of figures, each next to its baseline, and targets.

A ``Row`` holds our figure and (optionally) one baseline measured in the same run on the
same server; its ``ratio`` is always ours / baseline in the row's unit. A ``Target``
restates one of the benchmark goals with the factor measured for it and whether it was met.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from benchmarks._measure import Stat

__all__ = ["Report", "Row", "Target"]

HIGHER_IS_BETTER = ("/s",)


@dataclass(frozen=True)
class Row:
    """One figure of ours, optionally next to a baseline from the same run.

    ``key`` names the row for targets (``"w1.append.p50"``); ``unit`` ending in ``/s``
    means higher is better, anything else (``us``, ``ms``, ``s``, ``B/event``) lower.
    """

    key: str
    workload: int
    measure: str
    unit: str
    ours: Stat | None
    baseline_name: str = ""
    baseline: Stat | None = None
    ours_name: str = "ours"
    note: str = ""

    @property
    def ratio(self) -> float:
        """ours / baseline (medians); NaN without a baseline."""
        if self.ours is None or self.baseline is None or not self.baseline.median:
            return math.nan
        return self.ours.median / self.baseline.median

    @property
    def higher_is_better(self) -> bool:
        return self.unit.endswith(HIGHER_IS_BETTER)

    def as_json(self) -> dict[str, Any]:
        """Every field, with ``ratio`` and NaN as ``null``."""
        return {
            "key": self.key,
            "workload": self.workload,
            "measure": self.measure,
            "unit": self.unit,
            "ours_name": self.ours_name,
            "ours": self.ours.as_json() if self.ours else None,
            "baseline_name": self.baseline_name or None,
            "baseline": self.baseline.as_json() if self.baseline else None,
            "ratio": None if math.isnan(self.ratio) else self.ratio,
            "higher_is_better": self.higher_is_better,
            "note": self.note or None,
        }


@dataclass(frozen=True)
class Target:
    """One benchmark goal: ``factor`` (as the goal states it) compared with ``threshold``.

    ``factor`` is ``None`` when its rows could not be measured (say why in ``note``).
    ``ceiling`` is the same factor for raw redis-py with no framework, where the goal
    compares with a library that does no network I/O at all: if raw redis-py cannot
    reach the goal either, no Redis client can.
    """

    workload: int
    goal: str
    op: Literal["<=", ">="]
    threshold: float
    factor: float | None
    note: str = ""
    ceiling: float | None = None

    @property
    def met(self) -> bool | None:
        """Whether the goal was met; ``None`` when it was not measured."""
        if self.factor is None or math.isnan(self.factor):
            return None
        if self.op == "<=":
            return self.factor <= self.threshold
        return self.factor >= self.threshold

    def as_json(self) -> dict[str, Any]:
        """Every field plus ``met``."""
        factor = _finite(self.factor)
        return {
            "workload": self.workload,
            "goal": self.goal,
            "op": self.op,
            "threshold": self.threshold,
            "factor": factor,
            "met": self.met,
            "note": self.note or None,
            "ceiling": _finite(self.ceiling),
        }


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


@dataclass
class Report:
    """Everything one run measured: the machine, the mode, the rows and the targets."""

    mode: str
    command: str
    machine: dict[str, str]
    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    seconds: float = 0.0
    failures: dict[str, str] = field(default_factory=dict)  # workload group -> error

    def row(self, key: str) -> Row | None:
        """The row with ``key``, if measured."""
        return next((row for row in self.rows if row.key == key), None)

    def as_json(self) -> dict[str, Any]:
        """The whole report as JSON-compatible data."""
        return {
            "mode": self.mode,
            "command": self.command,
            "machine": self.machine,
            "seconds": round(self.seconds, 1),
            "rows": [row.as_json() for row in self.rows],
            "targets": [target.as_json() for target in self.targets],
            "failures": self.failures,
        }
