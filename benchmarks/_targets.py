"""The targets of workloads 1-10, the asyncio front's (workload 11) and many live feeds' (12), each
read off the rows measured in the same run.

A target names one row and how to read it: ``ratio`` (ours / baseline), ``speedup``
(baseline / ours, for "N x faster" on a time) or ``value`` (our figure itself).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from benchmarks._results import Report, Row, Target

__all__ = ["judge"]

Reading = Literal["ratio", "speedup", "value"]


@dataclass(frozen=True)
class _Goal:
    workload: int
    goal: str
    keys: tuple[str, ...]  # the first of these rows that was measured
    op: Literal["<=", ">="]
    threshold: float
    reading: Reading = "ratio"
    ceiling: str = ""  # the row of raw redis-py against the same baseline, if any


def _goals(largest_history: int, smallest_history: int) -> list[_Goal]:
    goals = [
        _Goal(
            1,
            "append p50 <= 1.6x a raw XADD round trip",
            ("w1.append.p50",),
            "<=",
            1.6,
            ceiling="w1.ceiling.p50",
        ),
        _Goal(
            2,
            "batch appends >= 0.5x one-EVALSHA-per-batch raw throughput",
            ("w2.save.script",),
            ">=",
            0.5,
        ),
    ]
    for workload, key, ceiling, what in (
        (2, "w2.save", "w2.ceiling", "1 save per aggregate"),
        (3, "w3.save", "w3.save.ceiling", "1 save per event"),
        (3, "w3.get_save", "w3.get_save.ceiling", "get + command + save"),
        (4, "w4.get", "w4.ceiling.typed", "reload"),
    ):
        goals += [
            _Goal(
                workload,
                f"{what} >= 3x eventsourcing on SQLite",
                (f"{key}.sqlite",),
                ">=",
                3,
                ceiling=f"{ceiling}.sqlite",
            ),
            _Goal(
                workload,
                f"{what} >= 1.5x eventsourcing on POPO",
                (f"{key}.popo",),
                ">=",
                1.5,
                ceiling=f"{ceiling}.popo",
            ),
        ]
    goals += [
        _Goal(
            5,
            "load without snapshot >= 5x faster than eventsourcing on SQLite",
            ("w5.load.none.sqlite",),
            ">=",
            5,
            "speedup",
            ceiling="w5.load.ceiling.sqlite",
        ),
        _Goal(
            5,
            "automatic snapshots cost <= 1.15x the write time without",
            ("w5.write.ours",),
            "<=",
            1.15,
        ),
        _Goal(
            6,
            f"load of {largest_history:,} events within 1.3x of {smallest_history:,} "
            "(with snapshots)",
            (f"w6.load.{largest_history}",),
            "<=",
            1.3,
        ),
        _Goal(
            7,
            "catch-up >= 0.35x raw XRANGE entries/s",
            ("w7.subscribe.plain",),
            ">=",
            0.35,
            ceiling="w7.ceiling.plain",
        ),
        _Goal(8, "live delivery p99 <= 5 ms (ms)", ("w8.live.p99",), "<=", 5, "value"),
        _Goal(9, "1 worker >= 0.5x raw XREADGROUP+XACK", ("w9.group.1",), ">=", 0.5),
        _Goal(9, "2 workers >= 0.5x raw XREADGROUP+XACK", ("w9.group.2",), ">=", 0.5),
        _Goal(
            10,
            "bytes/event on recommended settings <= 1.3x one plain stream",
            ("w10.recommended.total", "w10.given.total"),
            "<=",
            1.3,
            ceiling="w10.recommended.ceiling",
        ),
        _Goal(
            11,
            "async append p50, 1 task <= 1.3x raw redis.asyncio EVALSHA",
            ("w11.append.1.p50",),
            "<=",
            1.3,
            ceiling="w11.ceiling.1.p50",
        ),
        _Goal(
            11,
            "async appends, 64 tasks >= 1.5x raw redis.asyncio at 64",
            ("w11.append.64",),
            ">=",
            1.5,
            ceiling="w11.ceiling.64",
        ),
        _Goal(
            11,
            "async appends, 64 tasks >= 3x the sync store from 16 threads",
            ("w11.sync.64",),
            ">=",
            3,
            ceiling="w11.ceiling.sync",
        ),
        _Goal(
            11,
            "async read_all >= 0.8x sync read_all",
            ("w11.read_all",),
            ">=",
            0.8,
            ceiling="w11.read_all.ceiling",
        ),
        _Goal(
            12,
            "10,000 async live feeds: append -> feed p99 <= 10 ms (ms)",
            ("w12.fanout.p99",),
            "<=",
            10,
            "value",
            ceiling="w12.ceiling.p99",
        ),
        _Goal(
            12,
            "10,000 async live feeds: Redis connections <= 2 per server",
            ("w12.fanout.connections",),
            "<=",
            2,
            "value",
        ),
    ]
    return goals


def _factor(row: Row, reading: Reading) -> float:
    if reading == "value":
        return row.ours.median if row.ours else float("nan")
    if reading == "speedup":
        return 1 / row.ratio if row.ratio else float("nan")
    return row.ratio


def judge(report: Report, histories: tuple[int, ...]) -> list[Target]:
    """Every target with the factor measured for it (``None`` where its row is missing)."""
    targets = []
    for goal in _goals(max(histories), min(histories)):
        row = next((r for key in goal.keys if (r := report.row(key)) is not None), None)
        if row is None:
            targets.append(
                Target(
                    goal.workload,
                    goal.goal,
                    goal.op,
                    goal.threshold,
                    None,
                    "its workload was not run (--only)",
                )
            )
            continue
        note = row.note if row.baseline is None or row.ours is None else ""
        limit = report.row(goal.ceiling) if goal.ceiling else None
        targets.append(
            Target(
                goal.workload,
                goal.goal,
                goal.op,
                goal.threshold,
                _factor(row, goal.reading),
                note,
                ceiling=None if limit is None else _factor(limit, goal.reading),
            )
        )
    return targets
