"""The benchmark harness runs end to end (tiny sizes) and reports every workload.

It runs ``python -m benchmarks --smoke`` as a user would, on servers it starts itself,
with the eventsourcing POPO and SQLite baselines, and checks the shape of what it
wrote. Timings are never asserted: on a busy machine any figure is possible.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks._measure import Stat, percentile

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = set(range(1, 13))  # the first ten, the asyncio front (11), live fan-out (12)
# rows whose baseline is an eventsourcing backend that has no equivalent feature
NO_EQUIVALENT = {"w8.live.p50.sqlite", "w8.live.p99.sqlite"}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, str]:
    out = tmp_path_factory.mktemp("bench")
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--no-postgres", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"benchmarks failed:\n{done.stdout[-3000:]}\n{done.stderr}"
    report = json.loads((out / "latest.json").read_text())
    return report, (out / "latest.md").read_text(), done.stdout


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def test_every_workload_has_numeric_figures(smoke: tuple[dict[str, Any], str, str]) -> None:
    report, _, _ = smoke
    assert report["failures"] == {}
    rows = report["rows"]
    assert {row["workload"] for row in rows} == WORKLOADS
    for row in rows:
        if row["ours"] is None:  # only where a baseline library could not run
            assert "not measured" in row["note"], row
            continue
        assert _number(row["ours"]["median"]), row
        assert row["ours"]["min"] <= row["ours"]["median"] <= row["ours"]["max"], row
        if row["baseline"] is not None:
            assert _number(row["baseline"]["median"]), row
            assert _number(row["ratio"]), row
            expected = row["ours"]["median"] / row["baseline"]["median"]
            assert row["ratio"] == pytest.approx(expected), row


def test_eventsourcing_popo_and_sqlite_are_measured(
    smoke: tuple[dict[str, Any], str, str],
) -> None:
    report, _, _ = smoke
    by_key = {row["key"]: row for row in report["rows"]}
    for backend in ("popo", "sqlite"):
        compared = [k for k in by_key if k.endswith(f".{backend}") and k not in NO_EQUIVALENT]
        workloads = {by_key[k]["workload"] for k in compared}
        assert workloads == {1, 2, 3, 4, 5, 7} | ({8} if backend == "popo" else set())
        for key in compared:
            assert by_key[key]["baseline_name"].startswith(f"eventsourcing {backend}"), key
            assert _number(by_key[key]["baseline"]["median"]), key
    for key in NO_EQUIVALENT:
        assert by_key[key]["baseline"] is None
        assert "no subscriptions" in by_key[key]["note"]
    postgres = [row for key, row in by_key.items() if key.endswith(".postgres")]
    assert postgres, "postgres rows are listed even when not measured"
    assert all(row["baseline"] is None and "--no-postgres" in row["note"] for row in postgres)
    assert all(row["ratio"] is None for row in postgres)


def test_every_target_is_judged(smoke: tuple[dict[str, Any], str, str]) -> None:
    report, markdown, stdout = smoke
    targets = report["targets"]
    assert {t["workload"] for t in targets} == WORKLOADS
    for target in targets:
        assert _number(target["factor"]), target
        wanted = (
            target["factor"] <= target["threshold"]
            if target["op"] == "<="
            else target["factor"] >= target["threshold"]
        )
        assert target["met"] is wanted, target
    assert report["mode"] == "smoke"
    for name in ("cpu", "cores", "python", "redis_server", "redis_py", "eventsourcing"):
        assert report["machine"][name], name
    assert "| # | target |" in markdown
    assert markdown.strip() in stdout


def test_the_async_front_runs_next_to_raw_asyncio_and_the_sync_store(
    smoke: tuple[dict[str, Any], str, str],
) -> None:
    report, _, _ = smoke
    by_key = {row["key"]: row for row in report["rows"] if row["workload"] == 11}
    raw = [f"w11.{kind}.{n}" for kind in ("append", "ceiling") for n in (1, 16, 64, 256)]
    raw += [f"w11.{kind}.1.{q}" for kind in ("append", "ceiling") for q in ("p50", "p99")]
    sync = ["w11.sync.1", "w11.sync.16", "w11.sync.64", "w11.ceiling.sync"]
    catch_up = ["w11.read_all", "w11.read_all.ceiling"]
    assert set(by_key) == {*raw, *sync, *catch_up}
    for keys, baseline in (
        (raw, "raw redis.asyncio"),
        (sync, "EventStore.append"),
        (catch_up, "EventStore.read_all"),
    ):
        for key in keys:
            assert by_key[key]["baseline_name"].startswith(baseline), key
            assert _number(by_key[key]["ratio"]), key
    assert by_key["w11.sync.64"]["baseline_name"] == "EventStore.append, 16 threads"
    # every target of the async front has its raw ceiling beside it
    targets = [t for t in report["targets"] if t["workload"] == 11]
    assert len(targets) == 4
    assert all(_number(t["ceiling"]) for t in targets), targets


def test_smoke_says_which_sizes_were_reduced(smoke: tuple[dict[str, Any], str, str]) -> None:
    report, _, _ = smoke
    notes = [row["note"] or "" for row in report["rows"] if row["workload"] != 8]
    assert all("reduced" in note or "not measured" in note for note in notes if note)
    assert any("catch_up_events 100 (full: 100,000)" in note for note in notes)


@given(st.lists(st.floats(-1e9, 1e9), min_size=1, max_size=50), st.floats(0, 100))
def test_percentile_lies_within_the_values(values: list[float], q: float) -> None:
    assert min(values) <= percentile(values, q) <= max(values)
    assert percentile(values, 0) == min(values)
    assert percentile(values, 100) == max(values)


@given(st.lists(st.floats(-1e9, 1e9), min_size=2, max_size=50), st.floats(0, 100))
def test_percentile_grows_with_q(values: list[float], q: float) -> None:
    assert percentile(values, q) <= percentile(values, min(100.0, q + 1)) + 1e-6


@given(st.lists(st.floats(-1e9, 1e9), min_size=1, max_size=50))
def test_stat_median_lies_between_min_and_max(values: list[float]) -> None:
    stat = Stat.of(values)
    assert stat.low <= stat.median <= stat.high
    assert stat.runs == len(values)


def test_stat_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one run"):
        Stat.of([])
