"""A runner that lost its lease records no failure and moves no checkpoint.

Commits WATCH the version's lease, but the failure record (error hash plus a checkpoint
registered at 0) and the checkpoint rewind after a failed EXEC used to be written
unguarded: a handler failing while ``retire()`` ran re-registered the retired version
(pinning the log's safe trim point), and a runner taken over right after its EXEC moved
the new runner's checkpoint back, so the new runner's restart applied events twice.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from redis.client import Pipeline

from eventstore import EventStore, Projection, ProjectionContext, ProjectionTakenOver
from tests.domain import Deposited


def test_a_handler_failing_while_retire_runs_leaves_no_checkpoint_or_error(
    store: EventStore,
) -> None:
    store.append("Account", "a1", [Deposited(amount=1)], 0)
    projection = Projection(store, "totals", version=2)
    in_handler, go = threading.Event(), threading.Event()

    @projection.on(Deposited)
    def _deposited(event: Deposited, ctx: ProjectionContext) -> None:
        in_handler.set()
        go.wait(5)
        raise ValueError("fails once its version is retired")

    projection.start()
    try:
        assert in_handler.wait(5)
        projection.retire()
    finally:
        go.set()
        projection.stop(5)
    assert isinstance(projection.error, ProjectionTakenOver)
    assert store.client.hget(store.keys.checkpoints(0), projection.checkpoint_field) is None
    assert store.client.exists(projection.error_key) == 0
    assert store.safe_trim_point(0) == 2


def _totals(store: EventStore, *, refused: bool) -> Projection:
    """Sums deposits (not idempotent); if ``refused``, amount 1 also queues a WRONGTYPE."""
    projection = Projection(store, "totals", page_size=1)

    @projection.on(Deposited)
    def _deposited(event: Deposited, ctx: ProjectionContext) -> None:
        ctx.pipe.incrby(ctx.key("sum"), event.amount)
        if refused and event.amount == 1:
            ctx.pipe.rpush(ctx.key("not_a_list"), "x")  # refused at EXEC time

    return projection


def test_a_runner_taken_over_after_a_failed_exec_keeps_the_new_runners_checkpoint(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.append("Account", "a1", [Deposited(amount=n) for n in (1, 2, 3)], 0)
    old, new = _totals(store, refused=True), _totals(store, refused=False)
    store.client.set(old.key("not_a_list"), "a string")
    real_execute = old._execute

    def execute_then_taken_over(tx: Pipeline, batch: Any) -> list[Any]:
        results = real_execute(tx, batch)
        # between the EXEC and the rewind: a new runner takes over and commits 2 and 3
        new.run(until_caught_up=True)
        return results

    monkeypatch.setattr(old, "_execute", execute_then_taken_over)
    with pytest.raises(ProjectionTakenOver):
        old.run(until_caught_up=True)
    assert old.checkpoint().position(0) == 3
    assert old.last_error() is None
    _totals(store, refused=False).run(until_caught_up=True)  # the new runner restarts
    assert store.client.get(old.key("sum")) == b"6"  # each deposit applied once
