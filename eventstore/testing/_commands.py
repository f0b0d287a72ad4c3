"""An aggregate's commands and creators, with hypothesis strategies for their arguments.

Commands are the public methods a subclass of ``Aggregate`` defines (not projectors, not
invariants, not properties or class methods). Arguments come from the type hints
(``hypothesis.strategies.from_type``), or from the strategies the user passes per
command and parameter. A new aggregate comes into being in one of three ways: the bare
constructor, class methods annotated to return the class (``def open(cls, ...) ->
Account``), or the ``initial`` the user names (a command to run first, or a factory).
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from hypothesis import strategies as st
from hypothesis.errors import HypothesisException

from aggregates import Aggregate, AggregateError, invariant_names
from eventstore.testing._errors import CheckSetupError

__all__ = [
    "Command",
    "CommandPlan",
    "Creator",
    "Strategies",
    "build_plan",
    "strategy_for",
]

A = TypeVar("A", bound=Aggregate)
Strategies = Mapping[str, Mapping[str, st.SearchStrategy[Any]]]
"""Argument strategies per command name, then per parameter name."""

_ID_PARAMETERS = ("id", "aggregate_id")
_SELF_NAMES = ("Self", "typing.Self", "typing_extensions.Self")
# errors that are never a domain's answer to a command: bugs, or the toolkit's own signals
_NEVER_DOMAIN = (AssertionError, AggregateError, HypothesisException)


def strategy_for(hint: Any) -> st.SearchStrategy[Any]:
    """Values of a type hint; floats are finite (events cannot store inf or nan).

    ``Annotated[int, Field(gt=0)]`` honours the pydantic constraints.
    """
    if hint is float:
        return st.floats(allow_nan=False, allow_infinity=False)
    return st.from_type(_expand_field_info(hint))


def _expand_field_info(hint: Any) -> Any:
    # hypothesis understands annotated-types constraints (Gt, MaxLen), not pydantic's
    # FieldInfo that carries them
    if typing.get_origin(hint) is not Annotated:
        return hint
    base, *extras = typing.get_args(hint)
    flat: list[Any] = []
    for extra in extras:
        flat.extend(getattr(extra, "metadata", None) or [extra])
    return Annotated[(base, *flat)] if flat else base


@dataclass(frozen=True)
class Command:
    """One callable the check may run, with a strategy per generated parameter.

    ``variadic`` names a ``*args`` parameter (generated as a list, passed positionally);
    ``id_parameter`` names a creator parameter that receives the new aggregate's id.
    """

    name: str
    arguments: Mapping[str, st.SearchStrategy[Any]]
    variadic: str | None = None
    id_parameter: str | None = None

    def call(self, target: Callable[..., Any], values: Mapping[str, Any]) -> Any:
        """Call ``target`` with generated ``values``."""
        kwargs = dict(values)
        args = kwargs.pop(self.variadic, ()) if self.variadic else ()
        return target(*args, **kwargs)

    def describe(self, values: Mapping[str, Any], prefix: str = "") -> str:
        """The call as code: ``withdraw(amount=3)``."""
        kwargs = dict(values)
        parts = [repr(v) for v in kwargs.pop(self.variadic, ())] if self.variadic else []
        parts += [f"{k}={v!r}" for k, v in kwargs.items()]
        return f"{prefix}{self.name}({', '.join(parts)})"


class Creator:
    """How a new aggregate is made: with a ``factory`` (a class method or callable that
    returns it, its arguments described by ``command``), else by the constructor followed
    by ``command`` if set. ``prefix`` goes before the factory's name in reports."""

    __slots__ = ("command", "factory", "prefix")

    def __init__(
        self,
        command: Command | None = None,
        factory: Callable[..., Any] | None = None,
        prefix: str = "",
    ) -> None:
        self.command = command
        self.factory = factory
        self.prefix = prefix

    def __repr__(self) -> str:  # how hypothesis prints the creation step
        if self.command is None:
            return "<constructor>"
        if self.factory is None:
            return f"<constructor, then {self.command.name}>"
        return f"<factory {self.command.name}>"


@dataclass(frozen=True)
class CommandPlan(Generic[A]):
    """Everything the check needs to drive one aggregate class."""

    aggregate_class: type[A]
    creators: tuple[Creator, ...]
    commands: tuple[Command, ...]
    domain_errors: tuple[type[BaseException], ...] = (Exception,)
    default_errors: bool = True

    @property
    def name(self) -> str:
        """The aggregate's type name."""
        return self.aggregate_class.aggregate_type

    def is_domain_error(self, exc: BaseException) -> bool:
        """Whether ``exc`` from a command is a rejection (not a bug)."""
        if self.default_errors and isinstance(exc, _NEVER_DOMAIN):
            return False
        return isinstance(exc, self.domain_errors)

    def creations(self) -> st.SearchStrategy[tuple[Creator, dict[str, Any]]]:
        """One way of creating, with its generated arguments."""
        options = [
            st.tuples(st.just(c), st.fixed_dictionaries(dict(c.command.arguments)))
            if c.command is not None
            else st.tuples(st.just(c), st.just({}))
            for c in self.creators
        ]
        return st.one_of(options)

    def create(self, creator: Creator, values: Mapping[str, Any], aggregate_id: str) -> A:
        """Make the aggregate (a domain error propagates: the creation was rejected)."""
        command, factory = creator.command, creator.factory
        if command is None or factory is None:
            aggregate = self.aggregate_class(id=aggregate_id)
            if command is not None:
                command.call(getattr(aggregate, command.name), values)
            return aggregate
        values = dict(values)
        if command.id_parameter:
            values[command.id_parameter] = aggregate_id
        made = command.call(factory, values)
        if not isinstance(made, self.aggregate_class):
            raise CheckSetupError(
                f"{self.name}.{command.name}",
                "",
                f"a creator must return a {self.aggregate_class.__name__}, it returned {made!r}",
            )
        return made

    def describe_creation(self, creator: Creator, values: Mapping[str, Any], aid: str) -> str:
        """The creation as code: ``Account(id='…')``, ``Account.open(owner='ann')``."""
        cls_name = self.aggregate_class.__name__
        if creator.command is None:
            return f"{cls_name}(id={aid!r})"
        if creator.factory is None:
            return f"{cls_name}(id={aid!r}).{creator.command.describe(values)}"
        return creator.command.describe(values, prefix=creator.prefix)


def build_plan(
    aggregate_class: type[A],
    *,
    commands: Sequence[str] | None = None,
    strategies: Strategies | None = None,
    initial: str | Callable[..., A] | None = None,
    domain_errors: Sequence[type[BaseException]] | None = None,
) -> CommandPlan[A]:
    """Find the commands and creators of ``aggregate_class`` and their argument strategies.

    Raises ``CheckSetupError`` naming the command and parameter that cannot be generated.
    """
    if not (isinstance(aggregate_class, type) and issubclass(aggregate_class, Aggregate)):
        raise CheckSetupError(repr(aggregate_class), "", "expected an Aggregate subclass")
    given = dict(strategies or {})
    names = list(commands) if commands is not None else _public_commands(aggregate_class)
    if not names:
        raise CheckSetupError(
            aggregate_class.__name__, "", "has no public command methods: pass commands=[...]"
        )
    built = tuple(_method_command(aggregate_class, n, given.get(n, {})) for n in names)
    creators = _creators(aggregate_class, initial, given)
    used = {c.name for c in built} | {c.command.name for c in creators if c.command}
    for name in given:
        if name not in used:
            raise CheckSetupError(
                f"{aggregate_class.__name__}.{name}",
                "",
                f"strategies= names no command or creator (commands: {', '.join(sorted(used))})",
            )
    return CommandPlan(
        aggregate_class,
        creators,
        built,
        tuple(domain_errors) if domain_errors is not None else (Exception,),
        domain_errors is None,
    )


def _public_commands(cls: type[Aggregate]) -> list[str]:
    skip = set(cls._projectors.values()) | set(invariant_names(cls)) | set(dir(Aggregate))
    found: dict[str, None] = {}
    for klass in reversed(cls.__mro__):
        if klass in (object, Aggregate):
            continue
        for name, member in vars(klass).items():
            if name.startswith("_") or name in skip:
                continue
            if inspect.isfunction(member):
                found[name] = None
            else:  # a subclass turned the name into a property or attribute
                found.pop(name, None)
    return list(found)


def _method_command(
    cls: type[Aggregate], name: str, overrides: Mapping[str, st.SearchStrategy[Any]]
) -> Command:
    method = getattr(cls, name, None)
    if not inspect.isfunction(method):
        raise CheckSetupError(f"{cls.__name__}.{name}", "", "is not a method of the aggregate")
    return _command(f"{cls.__name__}.{name}", name, method, overrides, skip_first=True)


def _creators(
    cls: type[A], initial: str | Callable[..., A] | None, given: Mapping[str, Any]
) -> tuple[Creator, ...]:
    if isinstance(initial, str):
        command = _method_command(cls, initial, given.get(initial, {}))
        return (Creator(command),)
    if initial is not None:
        name = getattr(initial, "__name__", "initial")
        command = _command(f"initial {name}", name, initial, given.get(name, {}), ids=True)
        return (Creator(command, initial),)
    found = []
    for name in _factory_methods(cls):
        factory = getattr(cls, name)
        command = _command(f"{cls.__name__}.{name}", name, factory, given.get(name, {}), ids=True)
        found.append(Creator(command, factory, f"{cls.__name__}."))
    return tuple(found) or (Creator(),)


def _factory_methods(cls: type[Aggregate]) -> list[str]:
    names = []
    for name in dir(cls):
        static = inspect.getattr_static(cls, name)
        if name.startswith("_") or not isinstance(static, classmethod | staticmethod):
            continue
        returns = inspect.signature(static.__func__).return_annotation
        if returns is cls or returns is typing.Self or returns in (cls.__name__, *_SELF_NAMES):
            names.append(name)
    return names


def _command(
    subject: str,
    name: str,
    fn: Callable[..., Any],
    overrides: Mapping[str, st.SearchStrategy[Any]],
    *,
    skip_first: bool = False,
    ids: bool = False,
) -> Command:
    parameters = list(inspect.signature(fn).parameters.values())[1 if skip_first else 0 :]
    unknown = set(overrides) - {p.name for p in parameters}
    if unknown:
        raise CheckSetupError(subject, sorted(unknown)[0], "strategies= names no such parameter")
    hints = _hints(subject, fn, parameters)
    arguments: dict[str, st.SearchStrategy[Any]] = {}
    variadic = id_parameter = None
    for param in parameters:
        if param.kind is param.VAR_KEYWORD:
            continue
        if ids and param.name in _ID_PARAMETERS and param.name not in overrides:
            id_parameter = param.name
            continue
        if param.name in overrides:
            strategy: st.SearchStrategy[Any] | None = overrides[param.name]
        else:
            strategy = _from_hint(subject, param, hints)
        if strategy is None:
            continue  # not hinted but has a default: the default is used
        if param.kind is param.VAR_POSITIONAL:
            variadic, strategy = param.name, st.lists(strategy, max_size=3)
        arguments[param.name] = strategy
    return Command(name, arguments, variadic, id_parameter)


def _hints(subject: str, fn: Callable[..., Any], params: list[inspect.Parameter]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn, include_extras=True)
    except NameError:
        pass  # one unresolvable annotation (often the return type): resolve one by one
    hints = {}
    module_globals = getattr(fn, "__globals__", {})
    for param in params:
        if param.annotation is inspect.Parameter.empty:
            continue
        holder = types.SimpleNamespace(__annotations__={param.name: param.annotation})
        try:
            hints.update(typing.get_type_hints(holder, module_globals, include_extras=True))
        except NameError as exc:
            raise CheckSetupError(
                subject, param.name, f"the type hint cannot be resolved ({exc}): pass a strategy"
            ) from exc
    return hints


def _from_hint(
    subject: str, param: inspect.Parameter, hints: Mapping[str, Any]
) -> st.SearchStrategy[Any] | None:
    if param.name not in hints:
        if param.default is not inspect.Parameter.empty:
            return None
        raise CheckSetupError(
            subject,
            param.name,
            "has no type hint and no strategy: pass "
            f"strategies={{{subject.rsplit('.', 1)[-1]!r}: {{{param.name!r}: <strategy>}}}}",
        )
    strategy = strategy_for(hints[param.name])
    try:
        strategy.validate()
    except Exception as exc:  # hypothesis raises several kinds here
        raise CheckSetupError(
            subject,
            param.name,
            f"hypothesis cannot generate {hints[param.name]!r} ({exc}): pass a strategy",
        ) from exc
    return strategy
