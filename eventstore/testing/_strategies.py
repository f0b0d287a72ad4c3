"""Hypothesis strategies for your own properties: events, and histories of an aggregate."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, TypeVar

from hypothesis import strategies as st
from pydantic import ValidationError
from pydantic.fields import FieldInfo

from aggregates import Aggregate, DomainEvent
from eventstore.testing._commands import Command, CommandPlan, Strategies, build_plan, strategy_for
from eventstore.testing._errors import CheckSetupError

__all__ = ["domain_events", "event_sequences"]

E = TypeVar("E", bound=DomainEvent)
A = TypeVar("A", bound=Aggregate)


def domain_events(event_class: type[E], **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[E]:
    """Valid instances of ``event_class``: each field generated from its annotation (pydantic
    constraints such as ``Field(gt=0)`` included) unless ``fields`` gives its strategy.

    ::

        @given(domain_events(MoneyDeposited, amount=st.integers(1, 100)))
        def test_a_deposit_is_counted(event):
            ...
    """
    if not (isinstance(event_class, type) and issubclass(event_class, DomainEvent)):
        raise CheckSetupError(repr(event_class), "", "domain_events() expects a DomainEvent class")
    model_fields = event_class.model_fields
    for name in fields:
        if name not in model_fields:
            raise CheckSetupError(
                event_class.event_type,
                name,
                f"is not a field of the event (fields: {', '.join(model_fields) or 'none'})",
            )
    values: dict[str, st.SearchStrategy[Any]] = {}
    for name, info in model_fields.items():
        key = info.alias or name
        if name in fields:
            values[key] = fields[name]
        else:
            hint = (
                Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
            )
            values[key] = strategy_for(hint)
    build = functools.partial(_valid_event, event_class)
    return st.fixed_dictionaries(values).map(build).filter(_is_event)  # type: ignore[return-value]


def _field_strategy(info: FieldInfo) -> st.SearchStrategy[Any]:
    if info.metadata:  # constraints such as Gt(0) or MaxLen(3), which hypothesis honours
        return strategy_for(Annotated[(info.annotation, *info.metadata)])
    return strategy_for(info.annotation)


def _valid_event(event_class: type[E], values: Mapping[str, Any]) -> E | None:
    try:
        return event_class.model_validate(values)
    except ValidationError:
        return None  # a value the generator could not know was out of range: drawn again


def _is_event(value: object) -> bool:
    return value is not None


def event_sequences(
    aggregate_class: type[A],
    *,
    max_commands: int = 20,
    strategies: Strategies | None = None,
    commands: Sequence[str] | None = None,
    initial: str | Callable[..., A] | None = None,
    domain_errors: Sequence[type[BaseException]] | None = None,
) -> st.SearchStrategy[list[DomainEvent]]:
    """Histories the aggregate's own commands can produce: the events of a generated
    sequence of up to ``max_commands`` commands (rejected commands add nothing).

    The options mean what they mean for ``check_aggregate``. Useful for properties of
    code that consumes the events (read models, projections, upcasters)::

        @given(event_sequences(Account, initial="open"))
        def test_the_balance_read_model_agrees(events):
            ...
    """
    plan = build_plan(
        aggregate_class,
        commands=commands,
        strategies=strategies,
        initial=initial,
        domain_errors=domain_errors,
    )
    calls = st.one_of(
        [st.tuples(st.just(c), st.fixed_dictionaries(dict(c.arguments))) for c in plan.commands]
    )
    return st.tuples(plan.creations(), st.lists(calls, max_size=max_commands)).map(
        functools.partial(_history, plan)
    )


def _history(
    plan: CommandPlan[Any],
    drawn: tuple[tuple[Any, dict[str, Any]], list[tuple[Command, dict[str, Any]]]],
) -> list[DomainEvent]:
    (creator, values), calls = drawn
    try:
        aggregate = plan.create(creator, values, "history")
    except Exception as exc:
        if not plan.is_domain_error(exc):
            raise
        return []
    events = list(aggregate.pending_events)
    for command, arguments in calls:
        before = len(aggregate.pending_events)
        try:
            command.call(getattr(aggregate, command.name), arguments)
        except Exception as exc:
            if not plan.is_domain_error(exc):
                raise
            continue
        events.extend(aggregate.pending_events[before:])
    return events
