"""How big each workload is in each mode: ``full`` uses the target sizes.

``quick`` (the default, ``make bench``) keeps the full sizes wherever the whole run stays
within a few minutes and shrinks the rest; every shrunk size is named in ``reduced`` so the
table can say so. ``smoke`` is for the test suite: tiny, seconds, figures meaningless.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["FULL", "MODES", "QUICK", "SMOKE", "Sizes"]


@dataclass(frozen=True)
class Sizes:
    """Every size knob of the benchmark (see each workload's module for its use)."""

    mode: str
    runs: int  # runs per figure (median, min-max)
    latency_samples: int  # w1: appends timed per run
    aggregates: int  # w2, w4: aggregates written / reloaded per run
    events_per_aggregate: int  # w2, w3, w4, w7, w10
    single_saves: int  # w3: events saved one save each per run
    long_history: int  # w5: events of the one long aggregate
    write_cost_events: int  # w5: events saved one by one to price automatic snapshots
    snapshot_every: int  # w5, w6
    load_repeats: int  # w5, w6: loads timed per run
    histories: tuple[int, ...]  # w6
    catch_up_events: int  # w7
    live_events: int  # w8: events per run, paced at live_rate
    live_rate: int  # w8: events per second
    group_events: int  # w9
    memory_aggregates: int  # w10
    async_appends: int  # w11: appends per contender per run, spread over its tasks or threads
    fanout_feeds: int  # w12: async live feeds open at once, one aggregate each
    fanout_seconds: float  # w12: how long events are sent (at live_rate) per run

    def reduced_from(self, full: Sizes) -> dict[str, str]:
        """Each size smaller than in ``full``: name -> "used (full: N)"."""
        out = {}
        for spec in fields(self):
            ours, theirs = getattr(self, spec.name), getattr(full, spec.name)
            if spec.name in ("mode", "runs") or ours == theirs:
                continue
            out[spec.name] = f"{_show(ours)} (full: {_show(theirs)})"
        return out


def _show(value: object) -> str:
    if isinstance(value, tuple):
        return "/".join(_show(v) for v in value)
    return f"{value:,}" if isinstance(value, int) else str(value)


FULL = Sizes(
    mode="full",
    runs=5,
    latency_samples=2000,
    aggregates=1000,
    events_per_aggregate=10,
    single_saves=10_000,
    long_history=10_000,
    write_cost_events=10_000,
    snapshot_every=100,
    load_repeats=50,
    histories=(100, 10_000, 1_000_000),
    catch_up_events=100_000,
    live_events=3000,
    live_rate=1000,
    group_events=100_000,
    memory_aggregates=10_000,
    async_appends=16_384,
    fanout_feeds=10_000,
    fanout_seconds=3.0,
)

QUICK = Sizes(
    mode="quick",
    runs=3,
    latency_samples=2000,
    aggregates=1000,
    events_per_aggregate=10,
    single_saves=3000,
    long_history=10_000,
    write_cost_events=2000,
    snapshot_every=100,
    load_repeats=10,
    histories=(100, 10_000, 1_000_000),
    catch_up_events=30_000,
    live_events=2000,
    live_rate=1000,
    group_events=20_000,
    memory_aggregates=10_000,
    async_appends=8192,
    fanout_feeds=10_000,
    fanout_seconds=3.0,
)

SMOKE = Sizes(
    mode="smoke",
    runs=1,
    latency_samples=10,
    aggregates=10,
    events_per_aggregate=10,
    single_saves=20,
    long_history=120,
    write_cost_events=20,
    snapshot_every=10,
    load_repeats=2,
    histories=(10, 100, 1000),
    catch_up_events=100,
    live_events=10,
    live_rate=1000,
    group_events=50,
    memory_aggregates=10,
    async_appends=256,
    fanout_feeds=100,
    fanout_seconds=0.2,
)

MODES = {sizes.mode: sizes for sizes in (SMOKE, QUICK, FULL)}
