"""Consumer groups on every server of the matrix and on clusters: delivery, retries, dead
letters, lag, trims."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest

import eventstore
from eventstore import (
    ConfigurationError,
    DeadLetterNotFound,
    EventStore,
    GroupNotFound,
    RecordedEvent,
)
from tests.cli_helpers import run, run_json
from tests.domain import Deposited
from tests.letters import event_of

# the same tests on one server and on a Redis Cluster (one partition per slot)
pytestmark = [pytest.mark.also_on_cluster, pytest.mark.all_servers]
FAST = timedelta(milliseconds=60)


class Crash(BaseException):
    """Escapes the worker like a kill would: the entry in hand stays pending."""


@pytest.fixture
def store2(redis_url: str, namespace: str) -> Iterator[EventStore]:
    with EventStore.from_url(redis_url, namespace=namespace, partitions=2) as opened:
        yield opened


def append_many(store: EventStore, count: int, prefix: str = "a") -> list[str]:
    """One Deposited event per aggregate ``<prefix><i>``; returns the event ids, in order."""
    ids = [f"{prefix}{i}-event" for i in range(count)]
    for i, event_id in enumerate(ids):
        store.append("Account", f"{prefix}{i}", [Deposited(amount=i + 1)], 0, event_ids=[event_id])
    return ids


def test_public_names_are_exported() -> None:
    for name in ("ConsumerGroup", "Worker", "DeadLetter", "GroupNotFound", "DeadLetterNotFound"):
        assert name in eventstore.__all__
        assert getattr(eventstore, name).__doc__


def test_every_event_goes_to_one_worker_and_is_acknowledged(store2: EventStore) -> None:
    ids = append_many(store2, 30)
    group = store2.consumer_group("fulfillment", start="beginning")
    assert store2.consumer_group("fulfillment").lag() == 30  # creating twice is fine
    seen: list[RecordedEvent] = []
    worker = group.worker("w1", seen.append, max_deliveries=3, claim_idle=FAST)
    stats = worker.run(stop_when_idle=True)
    assert sorted(r.event_id for r in seen) == sorted(ids)
    assert {r.partition for r in seen} == {0, 1}
    assert (stats.processed, stats.failed, stats.dead_lettered) == (30, 0, 0)
    assert (group.lag(), group.pending(), group.dead_letters()) == (0, 0, [])
    for partition in (0, 1):  # per partition, in position order
        positions = [r.position for r in seen if r.partition == partition]
        assert positions == sorted(positions)


def test_start_end_skips_history(store: EventStore) -> None:
    append_many(store, 3)
    group = store.consumer_group("late", start="end")
    assert group.lag() == 0
    append_many(store, 2, prefix="b")
    seen: list[str] = []
    group.worker("w", lambda r: seen.append(r.aggregate_id), claim_idle=FAST).run(
        stop_when_idle=True
    )
    assert sorted(seen) == ["b0", "b1"]


def test_lag_and_pending_are_exact_at_every_step(store: EventStore) -> None:
    append_many(store, 5)
    group = store.consumer_group("steps")
    observed: list[tuple[int, int]] = []

    def handler(recorded: RecordedEvent) -> None:
        observed.append((group.lag(), group.pending()))

    group.worker("w", handler, batch_size=1, claim_idle=FAST).run(stop_when_idle=True)
    # batches of one: while the k-th event is handled, 5 - k wait and only it is pending
    assert observed == [(4, 1), (3, 1), (2, 1), (1, 1), (0, 1)]
    assert (group.lag(), group.pending()) == (0, 0)

    append_many(store, 3, prefix="b")
    assert (group.lag(), group.pending()) == (3, 0)
    crashing = group.worker("c", _crash_on(2), batch_size=3, claim_idle=timedelta(hours=1))
    with pytest.raises(Crash):
        crashing._read_new(block=False)  # b0 acked, b1 in hand when it "died", b2 waiting
    assert (group.lag(), group.pending()) == (0, 2)
    assert [e.consumer for e in group.pending_entries(0)] == ["c", "c"]
    crashing.run(stop_when_idle=True)  # restarted: drains its own pending first
    assert (group.lag(), group.pending()) == (0, 0)


def _crash_on(call: int) -> Callable[[RecordedEvent], None]:
    calls = Counter[str]()

    def handler(recorded: RecordedEvent) -> None:
        calls["n"] += 1
        if calls["n"] == call:
            raise Crash

    return handler


def test_step_by_step_counts_with_failures_and_replay(store: EventStore) -> None:
    append_many(store, 4)
    group = store.consumer_group("g")
    assert [(s.lag, s.pending, s.dead_letters) for s in group.status()] == [(4, 0, 0)]
    fail = {"a1"}

    def handler(recorded: RecordedEvent) -> None:
        if recorded.aggregate_id in fail:
            raise RuntimeError(f"payment for {recorded.aggregate_id} declined")

    worker = group.worker("w", handler, max_deliveries=2, batch_size=2, claim_idle=FAST)
    assert worker._read_new(block=False)  # a0 handled, a1 failed once: pending
    assert (group.lag(), group.pending()) == (2, 2)  # a0's XACK rides with the next read
    assert worker._read_new(block=False)  # a0 acked with it; a2, a3 handled
    assert (group.lag(), group.pending()) == (0, 3)
    worker._flush_deferred()  # what the worker's next command does first
    assert (group.lag(), group.pending()) == (0, 1)
    time.sleep(FAST.total_seconds() * 1.5)
    assert worker._claim()  # second delivery fails too: parked
    assert (group.lag(), group.pending()) == (0, 0)
    assert group.status()[0].dead_letters == 1
    (dead,) = group.dead_letters()
    assert (event_of(dead).aggregate_id, dead.deliveries, dead.consumer) == ("a1", 2, "w")
    assert dead.error.type == "RuntimeError"
    assert str(dead.error) == "RuntimeError: payment for a1 declined"
    assert "handler" in dead.error.traceback
    assert group.dead_letter(dead.id) == dead

    assert group.replay_dead_letters() == 1
    assert (group.lag(), group.pending(), group.dead_letters()) == (1, 0, [])
    fail.clear()
    stats = group.worker("w2", handler, claim_idle=FAST).run(stop_when_idle=True)
    assert stats.processed == 1
    assert (group.lag(), group.pending(), group.dead_letters()) == (0, 0, [])


def test_poison_event_among_slow_healthy_ones(store2: EventStore) -> None:
    ids = append_many(store2, 40)
    poison = ids[17]
    group = store2.consumer_group("fulfillment")
    attempts = Counter[str]()
    lock = threading.Lock()
    healed = threading.Event()

    def handler(recorded: RecordedEvent) -> None:
        with lock:
            attempts[recorded.event_id] += 1
        if recorded.event_id == poison and not healed.is_set():
            raise ValueError("card declined")
        time.sleep(0.015)  # slow: a batch of 10 outlives a third of claim_idle (renewals)

    idle = timedelta(milliseconds=300)
    workers = [group.worker(f"w{i}", handler, max_deliveries=3, claim_idle=idle) for i in (1, 2)]
    threads = [threading.Thread(target=w.run, kwargs={"stop_when_idle": True}) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert attempts[poison] == 3
    # healthy events waiting in a slow batch were renewed, never claimed away nor parked
    assert {i: attempts[i] for i in ids if i != poison and attempts[i] != 1} == {}
    assert sum(w.stats.claimed for w in workers) == 2  # the poison's two retries
    (dead,) = group.dead_letters()
    assert (event_of(dead).event_id, dead.deliveries) == (poison, 3)
    assert dead.error.message == "card declined"
    assert sum(w.stats.dead_lettered for w in workers) == 1
    assert (group.lag(), group.pending()) == (0, 0)

    healed.set()
    assert group.replay_dead_letters([dead.id]) == 1
    group.worker("w3", handler, claim_idle=idle).run(stop_when_idle=True)
    assert attempts[poison] == 4
    assert group.dead_letters() == []


def test_a_handler_that_kills_its_worker_is_parked_untried(store: EventStore) -> None:
    append_many(store, 2)
    group = store.consumer_group("g")
    calls = Counter[str]()

    def handler(recorded: RecordedEvent) -> None:
        calls[recorded.aggregate_id] += 1
        if recorded.aggregate_id == "a0":
            raise Crash

    for attempt in range(3):
        worker = group.worker(f"w{attempt}", handler, max_deliveries=3, claim_idle=FAST)
        time.sleep(FAST.total_seconds() * 1.5)
        with pytest.raises(Crash):
            worker.run(stop_when_idle=True)
    final = group.worker("w9", handler, max_deliveries=3, claim_idle=FAST)
    time.sleep(FAST.total_seconds() * 1.5)
    final.run(stop_when_idle=True)
    assert calls["a0"] == 3  # the fourth delivery was never handed to the handler
    (dead,) = group.dead_letters()
    assert (event_of(dead).aggregate_id, dead.deliveries) == ("a0", 4)
    assert dead.error.type == "DeliveriesExhausted"
    assert calls["a1"] == 1


def test_graceful_stop_finishes_the_event_in_hand(store: EventStore) -> None:
    append_many(store, 6)
    group = store.consumer_group("g")
    in_hand = threading.Event()
    handled: list[str] = []
    worker: eventstore.Worker | None = None

    def slow(recorded: RecordedEvent) -> None:
        in_hand.set()
        time.sleep(0.1)
        handled.append(recorded.aggregate_id)

    worker = group.worker("w1", slow, batch_size=6)
    thread = threading.Thread(target=worker.run)
    thread.start()
    assert in_hand.wait(10)
    worker.stop()
    thread.join(10)
    assert not thread.is_alive()
    assert handled == ["a0"]  # finished and acknowledged, nothing else started
    assert group.pending() == 5
    released = group.pending_entries(0)
    assert {e.deliveries for e in released} == {0}  # released untried
    # another worker takes them at once, although its claim_idle is long
    other = group.worker("w2", lambda r: handled.append(r.aggregate_id))
    other.run(stop_when_idle=True)
    assert sorted(handled) == [f"a{i}" for i in range(6)]
    assert (group.lag(), group.pending()) == (0, 0)


def test_own_pending_is_drained_first_on_restart(store: EventStore) -> None:
    append_many(store, 3)
    group = store.consumer_group("g")
    with pytest.raises(Crash):
        group.worker("w1", _crash_on(1), claim_idle=timedelta(hours=1))._read_new(block=False)
    assert group.pending() == 3
    seen: list[str] = []
    restarted = group.worker("w1", lambda r: seen.append(r.aggregate_id))
    restarted.run(stop_when_idle=True)
    assert seen == ["a0", "a1", "a2"]
    assert restarted.stats.claimed == 0


@pytest.mark.parametrize("path", ["drain", "claim"])
def test_entries_deleted_under_a_pending_entry_are_skipped(store: EventStore, path: str) -> None:
    append_many(store, 3)
    group = store.consumer_group("g")
    with pytest.raises(Crash):
        group.worker("w1", _crash_on(1), claim_idle=FAST)._read_new(block=False)
    store.client.xdel(store.keys.log(0), "0-2")  # someone trimmed under the group
    seen: list[str] = []
    time.sleep(FAST.total_seconds() * 1.5)
    consumer = "w1" if path == "drain" else "w2"
    worker = group.worker(consumer, lambda r: seen.append(r.aggregate_id), claim_idle=FAST)
    stats = worker.run(stop_when_idle=True)
    assert seen == ["a0", "a2"]
    assert stats.deleted == 1
    assert (group.lag(), group.pending()) == (0, 0)


def test_dead_letters_show_replay_discard(store2: EventStore) -> None:
    append_many(store2, 6)
    group = store2.consumer_group("g")
    group.worker("w", _always_fail, max_deliveries=1, claim_idle=FAST).run(stop_when_idle=True)
    dead = group.dead_letters()
    assert len(dead) == 6
    assert {d.deliveries for d in dead} == {1}
    assert len(group.dead_letters(limit=4)) == 4
    assert group.discard_dead_letters([dead[0].id]) == 1
    with pytest.raises(DeadLetterNotFound) as info:
        group.dead_letter(dead[0].id)
    assert info.value.dead_letter_id == dead[0].id
    with pytest.raises(ValueError, match="not a dead letter id"):
        group.dead_letter("junk")
    assert group.replay_dead_letters([dead[1].id, dead[2].id]) == 2
    assert (group.lag(), len(group.dead_letters())) == (2, 3)
    assert group.discard_dead_letters() == 3
    assert group.replay_dead_letters() == 0


def _always_fail(recorded: RecordedEvent) -> None:
    raise KeyError(recorded.aggregate_id)


def test_safe_trim_point_and_trim(store: EventStore) -> None:
    append_many(store, 8)
    assert store.safe_trim_point(0) == 9  # nothing registered: everything may go
    group = store.consumer_group("g")
    assert store.safe_trim_point(0) == 1  # the group has not seen anything
    worker = group.worker("w", _crash_on(3), batch_size=5, claim_idle=timedelta(hours=1))
    with pytest.raises(Crash):
        worker._read_new(block=False)  # 1, 2 acked; 3 in hand; 4, 5 pending
    assert store.safe_trim_point(0) == 3
    store.client.hset(store.keys.checkpoints(0), "projection", 2)
    assert store.safe_trim_point(0) == 3
    store.client.hset(store.keys.checkpoints(0), "projection", 1)
    assert store.safe_trim_point(0) == 2
    (result,) = store.trim_log(before=0)
    assert (result.safe_point, result.trimmed_to, result.removed) == (2, 2, 1)
    store.client.hset(store.keys.checkpoints(0), "projection", 8)
    (result,) = store.trim_log(0, before=2)
    assert result.removed == 0  # before= only ever lowers the point
    (result,) = store.trim_log()
    assert (result.safe_point, result.removed) == (3, 1)
    worker.run(stop_when_idle=True)  # the pending entries were kept: all handled
    assert (group.lag(), group.pending()) == (0, 0)
    assert store.trim_log()[0].trimmed_to == 9
    assert store.client.xlen(store.keys.log(0)) == 0
    append_many(store, 1, prefix="b")  # positions continue after a full trim
    assert group.lag() == 1
    with pytest.raises(ValueError, match="partition"):
        store.safe_trim_point(3)


def test_errors_name_what_is_at_fault(store: EventStore) -> None:
    with pytest.raises(ValueError, match="start"):
        store.consumer_group("g", start="middle")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="consumer group"):
        store.consumer_group("bad name")
    group = store.consumer_group("g")
    group.destroy()
    with pytest.raises(GroupNotFound) as info:
        group.lag()
    assert info.value.group == "g"
    assert "log" in info.value.stream


def test_socket_timeout_must_exceed_the_block_time(redis_url: str, namespace: str) -> None:
    with EventStore.from_url(redis_url, namespace=namespace, socket_timeout=0.5) as store:
        group = store.consumer_group("g")
        if not store.is_cluster:
            with pytest.raises(ConfigurationError, match="socket_timeout"):
                group.worker("w", print, block=timedelta(seconds=1))
            group.worker("w", print, block=timedelta(milliseconds=200))
            return
        # on a cluster nothing blocks in a command (the worker sleeps on Pub/Sub hints), so
        # a block time above the socket timeout is fine: an idle wait must not time out
        append_many(store, 1)
        seen: list[str] = []
        worker = group.worker("w", lambda r: seen.append(r.event_id), block=timedelta(seconds=1))
        thread = threading.Thread(target=worker.run)
        thread.start()
        time.sleep(1.5)  # idle waits longer than the socket timeout
        append_many(store, 1, prefix="b")
        deadline = time.monotonic() + 5
        while len(seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        worker.stop()
        thread.join(5)
        assert seen == ["a0-event", "b0-event"]


def test_workers_work_over_resp2_clients(redis_url: str, namespace: str) -> None:
    with EventStore.from_url(redis_url, namespace=namespace, partitions=2, protocol=2) as store:
        ids = append_many(store, 6)
        group = store.consumer_group("resp2")
        assert group.lag() == 6
        handled: list[str] = []

        def handler(recorded: RecordedEvent) -> None:
            if recorded.event_id == ids[3]:
                raise ValueError("poison")
            handled.append(recorded.event_id)

        group.worker("w", handler, max_deliveries=2, claim_idle=FAST).run(stop_when_idle=True)
        assert sorted(handled) == sorted(ids[:3] + ids[4:])
        assert [event_of(d).event_id for d in group.dead_letters()] == [ids[3]]
        assert (group.lag(), group.pending()) == (0, 0)
        group.client.close()


def test_undecodable_entries_are_dead_lettered_and_listed_not_fatal(
    store: EventStore, redis_url: str
) -> None:
    """A log entry that is no pointer, and an event whose stored data is bad, fail their
    deliveries like a handler error: the worker parks them with the error naming the key
    and handles the rest; the listing shows them (unreadable) next to the healthy one."""
    ids = append_many(store, 3)
    keys = store.keys
    log, bad_stream = keys.log(0), keys.stream("Account", "a1")
    store.client.xadd(log, {"k": bad_stream}, "0-4")  # no version, no type: not a pointer
    store.client.execute_command("XADD", bad_stream, "0-2", "t", "Deposited", "d", "{")  # type: ignore[no-untyped-call]
    store.client.xadd(log, {"k": bad_stream, "v": "2", "t": "Deposited"}, "0-5")
    store.client.set(keys.position(0), 5)
    store.append("Account", "a9", [Deposited(amount=9)], 0, event_ids=["late"])

    def handler(recorded: RecordedEvent) -> None:
        if recorded.aggregate_id == "a2":
            raise RuntimeError("a healthy letter")
        handled.append(recorded.event_id)

    handled: list[str] = []
    group = store.consumer_group("g", start="beginning")
    stats = group.worker("w", handler, max_deliveries=1).run(stop_when_idle=True)
    assert sorted(handled) == sorted([ids[0], ids[1], "late"])
    assert stats.dead_lettered == 3
    letters = group.dead_letters()
    assert len(letters) == 3
    healthy = [letter for letter in letters if letter.recorded is not None]
    assert [event_of(letter).aggregate_id for letter in healthy] == ["a2"]
    unreadable = [letter for letter in letters if letter.recorded is None]
    assert len(unreadable) == 2
    for letter in unreadable:
        assert letter.error.type == "StoredDataError"
        assert letter.unreadable
        assert letter.partition == 0
    pointer, event = sorted(unreadable, key=lambda letter: "malformed" not in letter.error.message)
    assert pointer.error.message.startswith(f"{log} version 4 ")  # the log entry at 0-4
    assert "entry 0-4" in (pointer.unreadable or "")
    assert bad_stream in event.error.message
    assert bad_stream in (event.unreadable or "")
    assert group.dead_letter(event.id).unreadable == event.unreadable
    listed = run_json(redis_url, store.namespace, "dlq", "list", "g", app=None)["dead_letters"]
    assert sorted(letter["event"] is None for letter in listed) == [False, True, True]
    shown = run_json(redis_url, store.namespace, "dlq", "show", "g", event.id, app=None)
    assert (shown["event"], shown["unreadable"]) == (None, event.unreadable)
    human = run(redis_url, store.namespace, "dlq", "show", "g", pointer.id, app=None)
    assert human.exit_code == 0
    assert "unreadable: entry 0-4" in human.stdout
    assert group.discard_dead_letters([pointer.id, event.id]) == 2
