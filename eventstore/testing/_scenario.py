"""Given/when/then tests of an aggregate, with no store: ``scenario(Account)``.

::

    scenario(Account).given(Opened(owner="ann"), Deposited(amount=5)) \\
        .when(lambda account: account.withdraw(3)) \\
        .then(Withdrawn(amount=3))

``given`` builds the aggregate by projecting past events, ``when`` runs one command,
``then`` / ``raises`` / ``then_state`` check what it did. A failed expectation raises
``ScenarioFailed`` (an ``AssertionError``) whose message shows what differed.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from aggregates import Aggregate, DomainEvent, InvariantViolated, MissingProjector, check_invariants
from eventstore.testing._compare import describe_events, events_diff, same_value, state_differences
from eventstore.testing._errors import ScenarioError, ScenarioFailed

__all__ = ["Scenario", "scenario"]

A = TypeVar("A", bound=Aggregate)


def scenario(aggregate_class: type[A], id: str | None = None) -> Scenario[A]:  # noqa: A002
    """Start a given/when/then test of ``aggregate_class`` (a new aggregate, no events)."""
    if not (isinstance(aggregate_class, type) and issubclass(aggregate_class, Aggregate)):
        raise ScenarioError(repr(aggregate_class), "scenario() expects an Aggregate subclass")
    return Scenario(aggregate_class, id)


class Scenario(Generic[A]):
    """One aggregate, its history (``given``), one command (``when``) and what it did.

    Every method returns the scenario, so the steps chain. ``aggregate`` is the live
    aggregate, ``events`` the events the last command triggered, ``error`` what it raised.
    ``@invariant`` methods are checked after ``given`` and after a command that succeeds.
    """

    def __init__(self, aggregate_class: type[A], id: str | None = None) -> None:  # noqa: A002
        self.aggregate: A = aggregate_class(id=id)
        self.events: tuple[DomainEvent, ...] = ()
        self.error: Exception | None = None
        self.result: Any = None
        self._name = aggregate_class.aggregate_type
        self._ran = False
        self._error_expected = False
        self._state_before: dict[str, Any] = {}

    def given(self, *events: DomainEvent) -> Scenario[A]:
        """Project past ``events`` into the aggregate (they are history, not pending)."""
        if self._ran:
            raise ScenarioError(self._name, "given() after when(): state the history first")
        for number, event in enumerate(events, start=1):
            if not isinstance(event, DomainEvent):
                raise ScenarioError(
                    self._name, f"given() argument {number} is {event!r}, not a DomainEvent"
                )
            try:
                self.aggregate.apply(event)
            except MissingProjector as exc:
                raise ScenarioError(self._name, f"given() event {number}: {exc}") from exc
        self._check_invariants("the given history")
        return self

    def when(self, command: Callable[[A], Any]) -> Scenario[A]:
        """Run ``command(aggregate)``; an exception is kept for ``raises``, not raised."""
        if not callable(command):
            raise ScenarioError(self._name, f"when() expects a callable, got {command!r}")
        pending_before = len(self.aggregate.pending_events)
        self._state_before = copy.deepcopy(self.aggregate.state())
        self._ran, self._error_expected = True, False
        self.error, self.result = None, None
        try:
            self.result = command(self.aggregate)
        except Exception as exc:  # noqa: BLE001 - kept for raises(); then() reports it
            self.error = exc
        self.events = self.aggregate.pending_events[pending_before:]
        if self.error is None:
            self._check_invariants("the command")
        return self

    def then(self, *expected: DomainEvent) -> Scenario[A]:
        """Expect exactly these new events, in order (compared by type and fields)."""
        self._require_when("then")
        for number, event in enumerate(expected, start=1):
            if not isinstance(event, DomainEvent):
                raise ScenarioError(
                    self._name, f"then() argument {number} is {event!r}, not a DomainEvent"
                )
        if self.error is not None:
            raise ScenarioFailed(
                self._name,
                f"expected the events {describe_events(expected)}, "
                f"but the command raised {self.error!r}",
            ) from self.error
        diff = events_diff(expected, self.events)
        if diff is not None:
            raise ScenarioFailed(self._name, f"the command triggered other events:\n{diff}")
        return self

    def raises(self, error: type[BaseException], match: str | None = None) -> Scenario[A]:
        """Expect the command to raise ``error`` (its message matching the regex ``match``),
        having triggered no event and left the state as it was."""
        self._require_when("raises")
        if not (isinstance(error, type) and issubclass(error, BaseException)):
            raise ScenarioError(self._name, f"raises() expects an exception class, got {error!r}")
        name = error.__name__
        if self.error is None:
            raise ScenarioFailed(
                self._name,
                f"expected {name}, but the command returned normally "
                f"(events: {describe_events(self.events)})",
            )
        if not isinstance(self.error, error):
            raise ScenarioFailed(self._name, f"expected {name}, got {self.error!r}") from self.error
        if match is not None and not re.search(match, str(self.error)):
            raise ScenarioFailed(
                self._name, f"{self.error!r} was raised, but its message does not match {match!r}"
            )
        self._require_untouched()
        self._error_expected = True
        return self

    def then_state(self, **fields: Any) -> Scenario[A]:
        """Expect these state attributes to hold these values (others are not checked)."""
        if self.error is not None and not self._error_expected:
            raise ScenarioFailed(
                self._name,
                f"the command raised {self.error!r}: expect it with raises() before then_state()",
            ) from self.error
        known = type(self.aggregate).state_fields()
        unknown = sorted(set(fields) - set(known))
        if unknown:
            raise ScenarioError(
                self._name,
                f"then_state(): {unknown[0]!r} is not a state field "
                f"(fields: {', '.join(known) or 'none'})",
            )
        actual = self.aggregate.state()
        wrong = [
            f"{name}: expected {value!r}, got {actual[name]!r}"
            for name, value in fields.items()
            if not same_value(value, actual[name])
        ]
        if wrong:
            raise ScenarioFailed(self._name, "state differs: " + "; ".join(wrong))
        return self

    def _require_when(self, method: str) -> None:
        if not self._ran:
            raise ScenarioError(self._name, f"{method}() before when(): run a command first")

    def _require_untouched(self) -> None:
        if self.events:
            raise ScenarioFailed(
                self._name,
                f"the command raised {self.error!r} after triggering "
                f"{describe_events(self.events)}: check the rules before triggering events",
            )
        changed = state_differences(self._state_before, self.aggregate.state(), "before", "after")
        if changed:
            raise ScenarioFailed(
                self._name,
                f"the command raised {self.error!r} but changed the state: " + "; ".join(changed),
            )

    def _check_invariants(self, after: str) -> None:
        try:
            check_invariants(self.aggregate)
        except InvariantViolated as exc:
            raise ScenarioFailed(
                self._name,
                f"after {after}, invariant {exc.invariant} does not hold ({exc.reason}); "
                f"state: {self.aggregate.state()}",
            ) from exc
