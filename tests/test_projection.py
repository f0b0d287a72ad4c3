"""Projections: handlers, checkpoint with the model in one MULTI, errors, blue/green."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from eventstore import (
    EventStore,
    Projection,
    ProjectionContext,
    ProjectionError,
    ProjectionTakenOver,
)
from tests.domain import Deposited, Opened, Withdrawn

pytestmark = pytest.mark.all_servers


def balances(store: EventStore, *, version: int = 1, page_size: int = 200) -> Projection:
    """Balance per account and an owner index (hash per version)."""
    projection = Projection(store, "balances", version=version, page_size=page_size)

    @projection.on(Opened)
    def _opened(event: Opened, ctx: ProjectionContext) -> None:
        ctx.pipe.hset(ctx.key("owner"), ctx.record.aggregate_id, event.owner)

    @projection.on(Deposited)
    def _deposited(event: Deposited, ctx: ProjectionContext) -> None:
        ctx.pipe.hincrby(ctx.key("balance"), ctx.record.aggregate_id, event.amount)

    @projection.on(Withdrawn)
    def _withdrawn(event: Withdrawn, ctx: ProjectionContext) -> None:
        ctx.pipe.hincrby(ctx.key("balance"), ctx.record.aggregate_id, -event.amount)

    return projection


def _balance(store: EventStore, projection: Projection, account: str) -> int:
    return int(store.client.hget(projection.active_key("balance"), account) or 0)


@pytest.fixture
def partitioned(redis_url: str, namespace: str) -> Iterator[EventStore]:
    with EventStore.from_url(redis_url, namespace=namespace, partitions=2) as opened:
        yield opened


def test_foreground_run_builds_the_model_and_registers_the_checkpoint(
    partitioned: EventStore,
) -> None:
    for i in range(6):
        partitioned.append("Account", f"a{i}", [Opened(owner=f"o{i}"), Deposited(amount=i)], 0)
    projection = balances(partitioned, page_size=3)
    projection.run(until_caught_up=True)
    assert [_balance(partitioned, projection, f"a{i}") for i in range(6)] == list(range(6))
    head = partitioned.head()
    assert projection.checkpoint() == head
    for partition in range(2):
        registered = partitioned.client.hget(
            partitioned.keys.checkpoints(partition), "projection:balances:v1"
        )
        assert int(registered or 0) == head.position(partition)


def test_background_projection_follows_live_events(store: EventStore) -> None:
    store.append("Account", "a1", [Opened(owner="ann"), Deposited(amount=10)], 0)
    with balances(store) as projection:
        assert projection.wait_until_caught_up(10)
        assert _balance(store, projection, "a1") == 10
        store.append("Account", "a1", [Withdrawn(amount=3)], 2)
        store.append("Wallet", "w1", [Opened(owner="skip")], 0)
        assert projection.wait_until_caught_up(10)
        assert _balance(store, projection, "a1") == 7
        assert projection.running
    assert not projection.running
    assert projection.checkpoint().position(0) == 4


def test_restart_resumes_from_the_stored_checkpoint(store: EventStore) -> None:
    store.append("Account", "a1", [Deposited(amount=1)] * 3, 0)
    balances(store).run(until_caught_up=True)
    store.append("Account", "a1", [Deposited(amount=5)], 3)
    again = balances(store)
    again.run(until_caught_up=True)
    assert _balance(store, again, "a1") == 8


def test_handler_error_stops_at_the_failed_event_which_is_not_skipped(store: EventStore) -> None:
    store.append("Account", "a1", [Opened(owner="x"), Deposited(amount=1), Deposited(amount=2)], 0)
    failing = Projection(store, "strict")
    seen: list[int] = []

    @failing.on(Deposited)
    def _deposited(event: Deposited, ctx: ProjectionContext) -> None:
        ctx.pipe.rpush(ctx.key("amounts"), event.amount)
        if event.amount == 2:
            raise ValueError("two is not allowed")
        seen.append(event.amount)

    with pytest.raises(ProjectionError) as info:
        failing.run(until_caught_up=True)
    error = info.value
    assert (error.projection, error.event_type, error.version, error.position) == (
        "strict",
        "Deposited",
        3,
        3,
    )
    assert "a1" in error.stream
    assert "two is not allowed" in str(error)
    assert isinstance(error.__cause__, ValueError)
    # the event before it is committed with its checkpoint; the failed one left no write
    assert store.client.lrange(failing.key("amounts"), 0, -1) == [b"1"]
    assert failing.checkpoint().position(0) == 2

    fixed = Projection(store, "strict")

    @fixed.on(Deposited)
    def _fixed(event: Deposited, ctx: ProjectionContext) -> None:
        ctx.pipe.rpush(ctx.key("amounts"), event.amount)

    fixed.run(until_caught_up=True)
    assert store.client.lrange(fixed.key("amounts"), 0, -1) == [b"1", b"2"]


def test_background_error_is_raised_by_wait_until_caught_up(store: EventStore) -> None:
    store.append("Account", "a1", [Deposited(amount=1)], 0)
    projection = Projection(store, "broken")

    @projection.on(Deposited)
    def _deposited(event: Deposited, ctx: ProjectionContext) -> None:
        raise RuntimeError("boom")

    with projection, pytest.raises(ProjectionError, match="boom"):
        projection.wait_until_caught_up(10)
    assert isinstance(projection.error, ProjectionError)


def test_a_write_redis_refuses_inside_exec_rewinds_the_checkpoint(store: EventStore) -> None:
    store.append("Account", "a1", [Deposited(amount=1), Deposited(amount=2)], 0)
    projection = Projection(store, "wrongtype")
    store.client.set(projection.key("list"), "not a list")

    @projection.on(Deposited)
    def _deposited(event: Deposited, ctx: ProjectionContext) -> None:
        ctx.pipe.incrby(ctx.key("sum"), event.amount)
        if event.amount == 2:
            ctx.pipe.rpush(ctx.key("list"), "x")  # WRONGTYPE at EXEC time

    with pytest.raises(ProjectionError, match="WRONGTYPE") as info:
        projection.run(until_caught_up=True)
    assert info.value.version == 2
    assert projection.checkpoint().position(0) == 1  # never past the failed event


def test_model_and_checkpoint_move_together_when_the_connection_drops(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kill the link right before a commit and right after it (reply lost), and send one
    commit twice (a client's retry after a lost reply): after the reconnect the model
    holds every event exactly once."""
    store.append("Account", "a1", [Deposited(amount=n) for n in range(1, 11)], 0)
    projection = balances(store, page_size=2)
    real_commit = projection._run_commit
    calls = {"n": 0}

    def flaky_commit(keys: list[str], args: list[Any]) -> list[Any]:
        calls["n"] += 1
        if calls["n"] == 2:
            raise redis.ConnectionError("lost before the commit")
        if calls["n"] == 4:
            real_commit(keys, args)
            raise redis.ConnectionError("lost after the commit, reply never arrived")
        if calls["n"] == 6:
            real_commit(keys, args)  # applied; the resend must apply nothing
        return real_commit(keys, args)

    monkeypatch.setattr(projection, "_run_commit", flaky_commit)
    projection.run(until_caught_up=True)
    monkeypatch.undo()
    assert calls["n"] == 6
    assert _balance(store, projection, "a1") == sum(range(1, 11))
    assert projection.checkpoint().position(0) == 10


def test_handlers_read_what_earlier_events_wrote(store: EventStore) -> None:
    store.append("Account", "a1", [Opened(owner="x")] + [Deposited(amount=1)] * 4, 0)
    projection = Projection(store, "running_max")

    @projection.on(Deposited)
    def _deposited(event: Deposited, ctx: ProjectionContext) -> None:
        current = int(ctx.client.get(ctx.key("total")) or 0)  # read first, then write
        ctx.pipe.set(ctx.key("total"), current + event.amount)

    projection.run(until_caught_up=True)
    assert store.client.get(projection.key("total")) == b"4"
    assert projection.checkpoint().position(0) == 5


def test_reading_after_writing_in_a_handler_is_refused(store: EventStore) -> None:
    store.append("Account", "a1", [Deposited(amount=1)], 0)
    projection = Projection(store, "misordered")

    @projection.on(Deposited)
    def _deposited(event: Deposited, ctx: ProjectionContext) -> None:
        ctx.pipe.set(ctx.key("x"), 1)
        ctx.client.get(ctx.key("x"))

    with pytest.raises(ProjectionError, match="before queuing writes"):
        projection.run(until_caught_up=True)
    assert store.client.get(projection.key("x")) is None


def test_blue_green_rebuild_then_switch(store: EventStore) -> None:
    store.append("Account", "a1", [Opened(owner="ann"), Deposited(amount=5)], 0)
    blue = balances(store, version=1)
    blue.run(until_caught_up=True)
    blue.promote()

    green = Projection(store, "balances", version=2)  # new model: cents, not units

    @green.on(Deposited)
    def _cents(event: Deposited, ctx: ProjectionContext) -> None:
        ctx.pipe.hincrby(ctx.key("balance"), ctx.record.aggregate_id, event.amount * 100)

    with blue, green:
        store.append("Account", "a1", [Deposited(amount=1)], 2)
        assert green.wait_until_caught_up(10)
        assert blue.wait_until_caught_up(10)
        assert _balance(store, green, "a1") == 6  # readers still see version 1
        green.promote()
        assert green.active_version() == blue.active_version() == 2
        assert _balance(store, blue, "a1") == 600

    with pytest.raises(Exception, match="serves reads"):
        green.retire()
    assert blue.retire() == 2  # its owner and balance hashes
    assert store.client.exists(blue.key("balance")) == 0
    assert store.client.hget(store.keys.checkpoints(0), blue.checkpoint_field) is None
    assert store.client.hget(store.keys.checkpoints(0), green.checkpoint_field) == b"3"


def test_stop_from_another_thread_ends_a_foreground_run(store: EventStore) -> None:
    projection = balances(store)
    projection.block_ms = 100
    timer = threading.Timer(0.3, projection.stop)
    timer.start()
    projection.run()  # returns once stopped
    timer.join()
    assert projection.checkpoint().position(0) == 0


def test_a_handler_per_event_type(store: EventStore) -> None:
    projection = Projection(store, "dupes")
    projection.on(Opened)(lambda event, ctx: None)
    with pytest.raises(ValueError, match="already handles Opened"):
        projection.on(Opened)(lambda event, ctx: None)
    with pytest.raises(ValueError, match="version"):
        Projection(store, "v0", version=0)


def test_a_second_runner_takes_over_and_nothing_applies_twice(store: EventStore) -> None:
    store.append("Account", "a1", [Deposited(amount=1)] * 5, 0)
    old, new = balances(store), balances(store)
    old.block_ms = new.block_ms = 100
    with old:
        assert old.wait_until_caught_up(10)
        with new:
            assert new.wait_until_caught_up(10)
            store.append("Account", "a1", [Deposited(amount=10)], 5)
            assert new.wait_until_caught_up(10)
            deadline = time.monotonic() + 10
            while old.running and time.monotonic() < deadline:  # it stops by itself
                time.sleep(0.01)
        assert isinstance(old.error, ProjectionTakenOver)
        assert "balances" in str(old.error)
    assert _balance(store, new, "a1") == 15
    assert new.checkpoint().position(0) == 6


def test_retiring_a_running_version_stops_its_runner(store: EventStore) -> None:
    store.append("Account", "a1", [Deposited(amount=1)], 0)
    projection = balances(store)
    projection.block_ms = 100
    with projection:
        assert projection.wait_until_caught_up(10)
        projection.retire()
        store.append("Account", "a1", [Deposited(amount=1)], 1)
        with pytest.raises(ProjectionTakenOver):
            projection.wait_until_caught_up(10)
    assert store.client.exists(projection.key("balance")) == 0
