"""``check_aggregate``: generated command sequences checked against event-sourcing laws.

A hypothesis state machine creates the aggregate, then runs its public commands with
generated arguments. A command that raises a domain error is a rejected command and must
leave no event and no state change. After every accepted command:

- replaying all events into a new aggregate gives the live version and state;
- the state survives a snapshot (JSON) round trip, and the latest snapshot the machine
  took plus the events after it gives the live state;
- every new event survives the codec (the stored JSON form);
- every ``@invariant`` of the aggregate holds;
- with a ``store``: saving and loading through a ``Repository`` gives the live state
  (with and without the snapshot), and at the end of each sequence the replay laws of
  ``assert_replay_consistent`` hold for every stored version.

A broken law raises ``AggregateCheckFailed`` with hypothesis' shrunk sequence of steps.
"""

from __future__ import annotations

import collections
import copy
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn, TypeVar

import hypothesis
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    rule,
    run_state_machine_as_test,
)

from aggregates import Aggregate, DomainEvent
from eventstore._core.errors import EventStoreError
from eventstore._core.keys import KeySchema
from eventstore._redis.repository import Repository
from eventstore._redis.store import EventStore
from eventstore.testing._commands import (
    Command,
    CommandPlan,
    Creator,
    Strategies,
    build_plan,
)
from eventstore.testing._compare import describe_events, state_differences
from eventstore.testing._errors import AggregateCheckFailed
from eventstore.testing._laws import assert_replay_consistent
from eventstore.testing._step_laws import (
    StateSnapshot,
    codec_problem,
    invariant_problem,
    replay_problem,
    snapshot_of,
    snapshot_problem,
    snapshot_tail_problem,
)

__all__ = ["check_aggregate"]

A = TypeVar("A", bound=Aggregate)


def check_aggregate(
    aggregate_class: type[A],
    store: EventStore | None = None,
    *,
    max_examples: int | None = None,
    max_steps: int = 20,
    strategies: Strategies | None = None,
    commands: Sequence[str] | None = None,
    initial: str | Callable[..., A] | None = None,
    domain_errors: Sequence[type[BaseException]] | None = None,
    snapshot_every: int = 3,
    settings: hypothesis.settings | None = None,
) -> None:
    """Run generated command sequences on ``aggregate_class`` and check the laws after each.

    ::

        check_aggregate(Account)                       # no Redis needed
        check_aggregate(Account, store=store, max_examples=50, initial="open",
                        strategies={"deposit": {"amount": st.integers(1, 1000)}})

    - ``commands``: the method names to call (default: every public method the class
      defines, except projectors and invariants);
    - ``strategies``: ``{command: {parameter: strategy}}`` for parameters whose type hint
      is not enough (a parameter with neither is a ``CheckSetupError``);
    - ``initial``: how a new aggregate starts: a command name run first, or a callable
      returning the aggregate (default: class methods annotated to return the class, else
      the bare constructor);
    - ``domain_errors``: the exceptions that mean "command rejected". Default: any
      ``Exception`` except ``AssertionError``, ``AggregateError`` and hypothesis' own;
      pass your domain's errors to have anything else reported as a bug;
    - ``store``: also save and reload through a ``Repository`` (``snapshot_every``) after
      every step, each sequence under a fresh aggregate id;
    - ``max_examples``, ``max_steps``, ``settings``: how many sequences, how long, and any
      other hypothesis settings (default: the active profile).

    Raises ``AggregateCheckFailed`` (an ``AssertionError``) with the shrunk sequence and
    what differed, also when no generated command was ever accepted.
    """
    plan = build_plan(
        aggregate_class,
        commands=commands,
        strategies=strategies,
        initial=initial,
        domain_errors=domain_errors,
    )
    repository = Repository(store, aggregate_class, snapshot_every) if store else None
    stats = _Stats()
    machine = _machine_class(plan, repository, stats)
    try:
        run_state_machine_as_test(machine, settings=_settings(settings, max_examples, max_steps))
    except Unsatisfiable as exc:
        raise AggregateCheckFailed(
            plan.name, (), f"creating the aggregate was always rejected ({stats.rejections()})"
        ) from exc
    if stats.accepted == 0:
        raise AggregateCheckFailed(
            plan.name,
            (),
            f"no generated command was ever accepted ({stats.rejections()}): pass "
            "strategies= that produce valid arguments, or initial= to create it first",
        )


def _settings(
    base: hypothesis.settings | None, max_examples: int | None, max_steps: int
) -> hypothesis.settings:
    parent = base if base is not None else hypothesis.settings()
    return hypothesis.settings(
        parent,
        max_examples=max_examples if max_examples is not None else parent.max_examples,
        stateful_step_count=max_steps,
        deadline=None,
        report_multiple_bugs=False,  # one minimal sequence, not a group of them
        # the explain phase traces lines run by failing cases: slow, and our report says more
        phases=[phase for phase in parent.phases if phase is not Phase.explain],
        suppress_health_check=[*parent.suppress_health_check, HealthCheck.too_slow],
    )


class _Stats:
    """Counts over every example: did anything ever get accepted?"""

    def __init__(self) -> None:
        self.accepted = 0
        self.rejected: collections.Counter[str] = collections.Counter()

    def rejections(self) -> str:
        if not self.rejected:
            return "nothing was rejected"
        return "rejected: " + ", ".join(f"{n} x {name}" for name, n in self.rejected.items())


class _Run:
    """One generated sequence: the live aggregate, its events and the steps so far."""

    def __init__(self, plan: CommandPlan[Any], repository: Repository[Any] | None) -> None:
        self.plan = plan
        self.repository = repository
        self.id = f"check-{uuid.uuid4().hex[:12]}"
        self.stream = (repository.store.keys if repository else KeySchema("es")).stream(
            plan.name, self.id
        )
        self.aggregate: Aggregate | None = None
        self.events: list[DomainEvent] = []
        self.steps: list[str] = []
        self.snapshot: StateSnapshot | None = None
        self.failed = False

    def fail(self, problem: str) -> NoReturn:
        self.failed = True  # teardown must not replace this report with its own
        raise AggregateCheckFailed(self.plan.name, self.steps, problem)

    def create(self, creator: Creator, values: Mapping[str, Any], stats: _Stats) -> None:
        call = self.plan.describe_creation(creator, values, self.id)
        try:
            aggregate = self.plan.create(creator, values, self.id)
        except Exception as exc:  # noqa: BLE001 - sorted into domain errors and bugs below
            if not self.plan.is_domain_error(exc):
                self.steps.append(f"{call} -> raised {exc!r}")
                self.fail(f"creating the aggregate raised {exc!r}, which is not a domain error")
            stats.rejected[type(exc).__name__] += 1
            hypothesis.reject()  # no aggregate to run commands on: try another creation
        self.aggregate = aggregate
        new = list(aggregate.pending_events)
        self.steps.append(f"{call} -> {describe_events(new)}")
        self.accepted(aggregate, new, call)

    def command(self, command: Command, values: Mapping[str, Any], stats: _Stats) -> None:
        aggregate = self.aggregate
        if aggregate is None:
            return
        pending, before = len(aggregate.pending_events), _observed(aggregate)
        call = command.describe(values)
        try:
            command.call(getattr(aggregate, command.name), values)
        except Exception as exc:  # noqa: BLE001 - sorted into domain errors and bugs below
            new = list(aggregate.pending_events[pending:])
            if not self.plan.is_domain_error(exc):
                self.steps.append(f"{call} -> raised {exc!r}")
                self.fail(f"{call} raised {exc!r}, which is not a domain error")
            stats.rejected[type(exc).__name__] += 1
            self.rejected(aggregate, call, exc, new, before)
            return
        stats.accepted += 1
        new = list(aggregate.pending_events[pending:])
        self.steps.append(f"{call} -> {describe_events(new)}")
        self.accepted(aggregate, new, call)

    def rejected(
        self,
        aggregate: Aggregate,
        call: str,
        exc: Exception,
        new: list[DomainEvent],
        before: dict[str, Any],
    ) -> None:
        if new:
            self.steps.append(f"{call} -> {describe_events(new)}, then raised {exc!r}")
            self.fail(
                f"{call} raised {exc!r} after triggering {describe_events(new)}: a rejected "
                "command must trigger no event (check the rules before calling trigger)"
            )
        changed = state_differences(before, _observed(aggregate), "before", "after")
        if changed:
            self.steps.append(f"{call} -> rejected: {exc!r}")
            self.fail(f"{call} raised {exc!r} but changed the state: " + "; ".join(changed))
        self.steps.append(f"{call} -> rejected: {exc!r}")

    def accepted(self, aggregate: Aggregate, new: list[DomainEvent], call: str) -> None:
        first = len(self.events) + 1
        self.events.extend(new)
        for version, event in enumerate(new, start=first):
            self._check(codec_problem(event, self.stream, version))
        after = f"after {call} triggered {describe_events(new)}: "
        self._check(replay_problem(aggregate, self.events), after)
        self._check(snapshot_problem(aggregate), after)
        if self.snapshot is not None:
            tail = self.events[self.snapshot[0] :]
            self._check(snapshot_tail_problem(aggregate, self.snapshot, tail), after)
        self._check(invariant_problem(aggregate), after)
        if self.repository is not None:
            self._store_round_trip(self.repository, aggregate, after)

    def take_snapshot(self) -> None:
        if self.aggregate is None:
            return
        snapshot, problem = snapshot_of(self.aggregate)
        self._check(problem)
        self.snapshot = snapshot
        self.steps.append(f"(snapshot taken at version {self.aggregate.version})")

    def finish(self) -> None:
        aggregate = self.aggregate
        if self.failed or self.repository is None or aggregate is None or not aggregate.version:
            return
        try:
            assert_replay_consistent(self.repository, aggregate.id)
        except (AssertionError, EventStoreError) as exc:
            self.fail(f"the stored aggregate breaks a replay law: {exc}")

    def _store_round_trip(
        self, repository: Repository[Any], aggregate: Aggregate, after: str
    ) -> None:
        try:
            repository.save(aggregate)
            if not aggregate.version:
                return
            for use_snapshot in (True, False):
                loaded = repository.get(aggregate.id, use_snapshot=use_snapshot)
                how = "loaded from the store" + ("" if use_snapshot else " without snapshot")
                self._check(_loaded_problem(aggregate, loaded, how), after)
        except EventStoreError as exc:
            self.fail(f"{after}saving or loading through the store failed: {exc}")

    def _check(self, problem: str | None, context: str = "") -> None:
        if problem is not None:
            self.fail(context + problem)


def _observed(aggregate: Aggregate) -> dict[str, Any]:
    """A copy of the state and the version, to tell whether a rejected command changed them."""
    return {"version": aggregate.version, **copy.deepcopy(aggregate.state())}


def _loaded_problem(live: Aggregate, loaded: Aggregate, how: str) -> str | None:
    if loaded.version != live.version:
        return f"version: live {live.version}, {how} {loaded.version}"
    differences = state_differences(live.state(), loaded.state(), "live", "loaded")
    if differences:
        return f"state {how} differs from the live state: " + "; ".join(differences)
    return None


def _machine_class(
    plan: CommandPlan[Any], repository: Repository[Any] | None, stats: _Stats
) -> type[RuleBasedStateMachine]:
    def __init__(self: Any) -> None:  # noqa: N807 - the machine's constructor
        RuleBasedStateMachine.__init__(self)
        self.run = _Run(plan, repository)

    def create(self: Any, creation: tuple[Creator, dict[str, Any]]) -> None:
        self.run.create(*creation, stats)

    def take_snapshot(self: Any) -> None:
        self.run.take_snapshot()

    def teardown(self: Any) -> None:
        self.run.finish()

    namespace: dict[str, Any] = {
        "__init__": __init__,
        "create": initialize(creation=plan.creations())(create),
        "take_snapshot": rule()(take_snapshot),
        "teardown": teardown,
    }
    for command in plan.commands:
        # one `arguments` dict, not keywords: a parameter may be called `target`, which
        # rule() would take as its own
        arguments = st.fixed_dictionaries(dict(command.arguments))
        namespace[f"command_{command.name}"] = rule(arguments=arguments)(_step(command, stats))
    machine = type(f"{plan.aggregate_class.__name__}Check", (RuleBasedStateMachine,), namespace)
    # the example database keys failures by machine: one key per aggregate class and mode
    cls = plan.aggregate_class
    digest = f"{cls.__module__}.{cls.__qualname__}:{'store' if repository else 'memory'}"
    machine._hypothesis_internal_add_digest = digest.encode()  # type: ignore[attr-defined]
    return machine


def _step(command: Command, stats: _Stats) -> Callable[..., None]:
    def step(self: Any, arguments: dict[str, Any]) -> None:
        self.run.command(command, arguments, stats)

    step.__name__ = step.__qualname__ = command.name  # hypothesis prints steps by this name
    return step
