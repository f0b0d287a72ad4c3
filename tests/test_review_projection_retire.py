"""Retiring a projection version while its runner is about to commit leaves nothing behind.

``retire()`` deletes the version's model keys and checkpoint and then its lease; a runner
that commits between those steps (its lease still valid) recreated model keys and
re-registered a checkpoint, which then pinned the log's safe trim point forever.
"""

from __future__ import annotations

import threading
from typing import Any

from eventstore import EventStore, Projection, ProjectionContext
from tests.domain import Deposited


def test_a_commit_racing_retire_leaves_no_model_key_or_checkpoint(store: EventStore) -> None:
    store.append("Account", "a1", [Deposited(amount=1), Deposited(amount=2)], 0)
    projection = Projection(store, "totals", version=2, page_size=1)
    in_handler, go = threading.Event(), threading.Event()

    @projection.on(Deposited)
    def _deposited(event: Deposited, ctx: ProjectionContext) -> None:
        if event.amount == 2:
            in_handler.set()
            go.wait(5)
        ctx.pipe.incrby(ctx.key("total"), event.amount)

    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            projection.run(until_caught_up=True)
            outcome.append(None)
        except Exception as exc:
            outcome.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    assert in_handler.wait(5)  # event 1 is committed, event 2 is in its handler
    real_hdel = store.client.hdel

    def hdel_then_let_the_runner_commit(*args: Any) -> Any:
        removed = real_hdel(*args)
        go.set()
        runner.join(5)
        return removed

    store.client.hdel = hdel_then_let_the_runner_commit  # type: ignore[method-assign,assignment]
    try:
        projection.retire()
    finally:
        del store.client.hdel
        go.set()
        runner.join(5)
    assert len(outcome) == 1
    assert outcome[0] is not None  # the runner was stopped, not committed
    assert list(store.client.scan_iter(match=f"{projection.key()}*")) == []
    assert store.client.hget(store.keys.checkpoints(0), projection.checkpoint_field) is None
    assert store.safe_trim_point(0) == 3
