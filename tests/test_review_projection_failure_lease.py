"""A runner that lost its lease records no failure and moves no checkpoint.

Commits check the version's lease, and so must the failure record (error hash plus a
checkpoint registered at 0): unguarded, a handler failing while ``retire()`` ran would
re-register the retired version (pinning the log's safe trim point), and a runner taken
over right after a refused write would record a failure over the new runner's progress.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

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
    """Sums deposits (not idempotent); if ``refused``, amount 1 first queues a WRONGTYPE."""
    projection = Projection(store, "totals", page_size=1)

    @projection.on(Deposited)
    def _deposited(event: Deposited, ctx: ProjectionContext) -> None:
        if refused and event.amount == 1:
            ctx.pipe.rpush(ctx.key("not_a_list"), "x")  # refused by Redis at commit time
        ctx.pipe.incrby(ctx.key("sum"), event.amount)

    return projection


def test_a_runner_taken_over_after_a_refused_write_keeps_the_new_runners_checkpoint(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.append("Account", "a1", [Deposited(amount=n) for n in (1, 2, 3)], 0)
    old, new = _totals(store, refused=True), _totals(store, refused=False)
    store.client.set(old.key("not_a_list"), "a string")
    real_commit = old._run_commit

    def commit_then_taken_over(keys: list[str], args: list[Any]) -> list[Any]:
        reply = real_commit(keys, args)
        # between the refused commit and the failure record: a new runner takes over
        # and commits 1, 2 and 3
        new.run(until_caught_up=True)
        return reply

    monkeypatch.setattr(old, "_run_commit", commit_then_taken_over)
    with pytest.raises(ProjectionTakenOver):
        old.run(until_caught_up=True)
    assert old.checkpoint().position(0) == 3
    assert old.last_error() is None
    _totals(store, refused=False).run(until_caught_up=True)  # the new runner restarts
    assert store.client.get(old.key("sum")) == b"6"  # each deposit applied once
