"""The report as markdown: the machine, the targets, then every figure with its baseline."""

from __future__ import annotations

import math

from benchmarks._measure import Stat
from benchmarks._results import Report, Row, Target

__all__ = ["markdown"]


def _number(value: float) -> str:
    if math.isnan(value):
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def _stat(stat: Stat | None) -> str:
    if stat is None:
        return "-"
    if stat.runs == 1:
        return _number(stat.median)
    return f"{_number(stat.median)} ({_number(stat.low)}-{_number(stat.high)})"


def _ratio(row: Row) -> str:
    return "-" if math.isnan(row.ratio) else f"{row.ratio:.2f}x"


def _met(target: Target) -> str:
    return {True: "met", False: "**missed**", None: "not measured"}[target.met]


def _target_line(target: Target) -> str:
    factor = "-" if target.factor is None else f"{target.factor:.2f}"
    ceiling = "" if target.ceiling is None else f"{target.ceiling:.2f}"
    note = f" ({target.note})" if target.note else ""
    return (
        f"| {target.workload} | {target.goal} | {target.op} {target.threshold:g} "
        f"| {factor} | {_met(target)}{note} | {ceiling} |"
    )


def _row_line(row: Row) -> str:
    return (
        f"| {row.workload} | {row.measure} | {row.unit} | {row.ours_name} | {_stat(row.ours)} "
        f"| {row.baseline_name or '-'} | {_stat(row.baseline)} | {_ratio(row)} "
        f"| {row.note or ''} |"
    )


def markdown(report: Report) -> str:
    """The whole report: machine, command, targets, figures."""
    lines = [
        f"Mode `{report.mode}`, `{report.command}`, {report.seconds:.0f} s in all.",
        "",
        "| machine | |",
        "| --- | --- |",
        *(f"| {name} | {value} |" for name, value in report.machine.items()),
        "",
        "Targets (factors from the same run, on the same server):",
        "",
        "| # | target | wanted | measured | | raw redis-py, same baseline |",
        "| --- | --- | --- | --- | --- | --- |",
        *(_target_line(target) for target in report.targets),
        "",
        (
            "Figures: median of the runs (min-max); ratio = ours / baseline "
            "(units ending in /s: higher is better; others: lower is better)."
        ),
        "",
        (
            "| # | measure | unit | ours | ours: median (min-max) | baseline "
            "| baseline: median (min-max) | ratio | note |"
        ),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *(_row_line(row) for row in report.rows),
        *(f"\nFAILED: {name}: {error}" for name, error in report.failures.items()),
    ]
    return "\n".join(lines) + "\n"
