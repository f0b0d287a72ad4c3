"""Options and decorators shared by every command."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from eventstore.cli._state import CliState, state_of

__all__ = ["json_option", "pass_state"]

F = TypeVar("F", bound=Callable[..., Any])

pass_state = click.make_pass_decorator(CliState)
"""Hands the run's ``CliState`` to a command as its first argument."""


def json_option(fn: F) -> F:
    """``--json`` on a command (the same as the global ``--json``)."""

    def enable(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        """Switch the run to JSON output when the flag is given."""
        if value:
            state_of(ctx).json_mode = True

    option = click.option(
        "--json",
        "json_flag",
        is_flag=True,
        expose_value=False,
        callback=enable,
        help="Print a JSON document (shapes in docs/cli.md) instead of tables.",
    )
    return option(fn)
