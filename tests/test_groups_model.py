"""A hypothesis state machine: deliver / ack / fail / crash / claim against a model.

Each step drives real workers on a real server; after every step the group's lag,
pending entries (owner and delivery count of each) and dead letters must equal what a
plain-Python model of the agreed semantics predicts.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import ClassVar

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from eventstore import EventStore, RecordedEvent
from tests.domain import Deposited
from tests.letters import event_of

# the same model on one server and on a Redis Cluster (one partition per slot)
pytestmark = pytest.mark.also_on_cluster

MAX = 3
BATCH = 3
IDLE = timedelta(milliseconds=20)
WORKERS = ("w1", "w2")
outcomes = st.lists(st.sampled_from(["ack", "fail", "crash"]), max_size=6)


class ModelCrash(BaseException):
    """The handler's process 'dies': nothing after it runs, nothing is acknowledged."""


class GroupMachine(RuleBasedStateMachine):
    url: ClassVar[str] = ""

    def __init__(self) -> None:
        super().__init__()
        self.store = EventStore.from_url(self.url, namespace=f"m{uuid.uuid4().hex[:8]}")
        self.group = self.store.consumer_group("g")
        self.workers = {
            name: self.group.worker(
                name, self._handle, max_deliveries=MAX, claim_idle=IDLE, batch_size=BATCH
            )
            for name in WORKERS
        }
        self.plan: list[str] = []
        self.calls: list[int] = []
        # the model: positions appended / delivered, pending position -> (owner, count)
        self.appended = 0
        self.delivered = 0
        self.pending: dict[int, tuple[str, int]] = {}
        self.dead: dict[int, int] = {}
        self.model_plan: list[str] = []
        self.model_calls: list[int] = []

    def teardown(self) -> None:
        self.group.client.close()
        self.store.close()

    def _handle(self, recorded: RecordedEvent) -> None:
        self.calls.append(recorded.position)
        outcome = self.plan.pop(0) if self.plan else "ack"
        if outcome == "fail":
            raise ValueError(f"position {recorded.position} failed")
        if outcome == "crash":
            raise ModelCrash

    # -- the model ------------------------------------------------------------------------

    def _model_handle(self, consumer: str, position: int, count: int) -> bool:
        """Apply one handler call; False when it crashed (the run stops there)."""
        self.model_calls.append(position)
        outcome = self.model_plan.pop(0) if self.model_plan else "ack"
        del self.pending[position]
        if outcome == "fail" and count >= MAX:
            self.dead[position] = count
        elif outcome != "ack":
            self.pending[position] = (consumer, count)
        return outcome != "crash"

    def _model_redeliver(self, consumer: str, positions: list[int]) -> None:
        """Claims and restarts take entries one at a time, each delivery counted."""
        for position in positions:
            count = self.pending[position][1] + 1
            self.pending[position] = (consumer, count)
            if count > MAX:  # delivered MAX times without an outcome: parked untried
                del self.pending[position]
                self.dead[position] = count
            elif not self._model_handle(consumer, position, count):
                return

    def _set_plan(self, plan: list[str]) -> None:
        self.plan, self.model_plan = list(plan), list(plan)

    @staticmethod
    def _run(action: Callable[[], object]) -> None:
        with contextlib.suppress(ModelCrash):
            action()

    # -- rules ----------------------------------------------------------------------------

    @rule(count=st.integers(1, 4))
    def append(self, count: int) -> None:
        for _ in range(count):
            self.appended += 1
            self.store.append("Account", f"m{self.appended}", [Deposited(amount=1)], 0)

    @rule(worker=st.sampled_from(WORKERS), plan=outcomes)
    def deliver(self, worker: str, plan: list[str]) -> None:
        self._set_plan(plan)
        self._run(lambda: self._read_then_ack(worker))
        batch = list(range(self.delivered + 1, min(self.delivered + BATCH, self.appended) + 1))
        self.delivered += len(batch)
        for position in batch:
            self.pending[position] = (worker, 1)
        for position in batch:
            if not self._model_handle(worker, position, 1):
                break

    def _read_then_ack(self, worker: str) -> None:
        # A read's acknowledgements ride with the worker's next command: a step of the
        # model is a read and that next command (here sent on its own)
        self.workers[worker]._read_new(block=False)
        self.workers[worker]._flush_deferred()

    @rule(worker=st.sampled_from(WORKERS), plan=outcomes)
    def claim(self, worker: str, plan: list[str]) -> None:
        time.sleep(IDLE.total_seconds() * 1.5)  # every pending entry is now claimable
        self._set_plan(plan)
        self._run(self.workers[worker]._claim)
        self._model_redeliver(worker, sorted(self.pending))

    @rule(worker=st.sampled_from(WORKERS), plan=outcomes)
    def restart(self, worker: str, plan: list[str]) -> None:
        self._set_plan(plan)
        self._run(self.workers[worker]._drain_own_pending)
        own = sorted(p for p, (owner, _) in self.pending.items() if owner == worker)
        self._model_redeliver(worker, own)

    # -- invariants -----------------------------------------------------------------------

    @invariant()
    def matches_model(self) -> None:
        assert self.calls == self.model_calls
        assert self.group.lag() == self.appended - self.delivered
        assert self.group.pending() == len(self.pending)
        real = {
            int(e.entry_id.partition("-")[2]): (e.consumer, e.deliveries)
            for e in self.group.pending_entries(0)
        }
        assert real == self.pending
        dead = {event_of(d).position: d.deliveries for d in self.group.dead_letters()}
        assert dead == self.dead


def test_group_follows_the_model(redis_url: str, server_name: str) -> None:
    GroupMachine.url = redis_url
    # a cluster step costs more round trips (one read per partition): half the examples
    examples = settings().max_examples // (2 if server_name == "cluster" else 1)
    run_state_machine_as_test(
        GroupMachine, settings=settings(stateful_step_count=15, max_examples=examples)
    )
