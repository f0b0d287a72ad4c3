"""Errors of the domain-testing tools.

Misuse (a test that cannot run as written) is an ``EventStoreError``; a finding (the
aggregate under test broke a rule) is an ``AssertionError``, so pytest reports it as a
failed assertion::

EventStoreError
├── ScenarioError          a scenario used wrongly: then() before when(), unknown field
└── CheckSetupError        a command or event field cannot be generated (unhinted, unknown)
AssertionError
├── ScenarioFailed         a given/when/then expectation did not hold
└── AggregateCheckFailed   a generated command sequence broke an event-sourcing law
"""

from __future__ import annotations

from collections.abc import Sequence

from eventstore._core.errors import EventStoreError

__all__ = ["AggregateCheckFailed", "CheckSetupError", "ScenarioError", "ScenarioFailed"]


class ScenarioError(EventStoreError):
    """A scenario was written in a way that cannot run (names the aggregate and the call)."""

    def __init__(self, aggregate_type: str, message: str) -> None:
        self.aggregate_type = aggregate_type
        super().__init__(f"scenario({aggregate_type}): {message}")


class CheckSetupError(EventStoreError):
    """A command, creator or event field cannot be generated: names it and the parameter.

    ``subject`` is what is at fault (``"Account.withdraw"``, ``"MoneyDeposited"``);
    ``parameter`` the parameter or field, or ``""`` when the whole subject is at fault.
    """

    def __init__(self, subject: str, parameter: str, reason: str) -> None:
        self.subject = subject
        self.parameter = parameter
        where = f"{subject}, parameter {parameter!r}" if parameter else subject
        super().__init__(f"{where}: {reason}")


class ScenarioFailed(AssertionError):
    """A scenario's expectation did not hold; the message says what differed."""

    def __init__(self, aggregate_type: str, message: str) -> None:
        self.aggregate_type = aggregate_type
        super().__init__(f"{aggregate_type}: {message}")


class AggregateCheckFailed(AssertionError):
    """``check_aggregate`` found a command sequence that breaks a law.

    ``steps`` is the (shrunk) sequence, one readable line per command with the events it
    produced or the error that rejected it; ``problem`` says which law broke and what
    differed (field, live value, other value, event).
    """

    def __init__(self, aggregate_type: str, steps: Sequence[str], problem: str) -> None:
        self.aggregate_type = aggregate_type
        self.steps = tuple(steps)
        self.problem = problem
        listing = "\n".join(f"  {n}. {step}" for n, step in enumerate(self.steps, start=1))
        super().__init__(
            f"{aggregate_type}: {problem}\n"
            f"after this sequence of {len(self.steps)} step(s):\n{listing or '  (none)'}"
        )
