"""``acl``: the least-privilege ACL rule of the namespace, printed or applied to a user.

The rule is ``acl_rule``'s for the server the CLI talks to (a cluster: its oldest
primary), or for ``--redis-version``. ``--apply USER`` sends ``ACL SETUSER`` to the
server, or to every primary of a cluster (ACLs are per node): the user is created if
new, and an existing user's rights are replaced while its passwords stay.
"""

from __future__ import annotations

import os
from typing import Any

import click
import redis
from rich.console import Console
from rich.markup import escape

from eventstore._core.acl import acl_tokens
from eventstore._core.permissions import permission_denied
from eventstore._redis.clients import node_clients
from eventstore._redis.permissions import user_of
from eventstore._redis.server import server_infos
from eventstore.cli._options import json_option, pass_state
from eventstore.cli._state import CliState

__all__ = ["COMMANDS"]


def _version(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split("."))
    except ValueError:
        raise click.BadParameter(f"not a version such as 7.2: {text!r}") from None


def _apply(client: redis.Redis, user: str, tokens: list[str], password: str | None) -> list[str]:
    """``ACL SETUSER`` on every primary; the nodes it was applied to (``""``: the server)."""
    # a password turns the user on; without one a new user stays off, an old one as it was
    args = [*tokens, "on", f">{password}"] if password else tokens
    applied = []
    with node_clients(client) as nodes:
        for name, node in nodes.items():
            try:  # creates the user if new
                node.execute_command("ACL", "SETUSER", user, *args)  # type: ignore[no-untyped-call]
            except redis.ResponseError as exc:
                denied = permission_denied(str(exc), user=user_of(node), command="acl|setuser")
                if denied is not None:
                    raise denied from exc
                raise
            applied.append(name)
    return applied


@click.command()
@click.option("--redis-version", "version_text", help="Rule for this version (default: ask).")
@click.option("--read-config", is_flag=True, help="Also grant CONFIG GET (see docs).")
@click.option("--command", "extra", multiple=True, help="Also grant this command (repeatable).")
@click.option("--apply", "user", help="Create or update this Redis user with the rule.")
@click.option(
    "--password-env",
    help="With --apply: set the password from this environment variable (and turn on).",
)
@json_option
@pass_state
def acl(
    state: CliState,
    *,
    version_text: str | None,
    read_config: bool,
    extra: tuple[str, ...],
    user: str | None,
    password_env: str | None,
) -> None:
    """Print the least-privilege ACL rule of the namespace; --apply USER creates it."""
    password = None
    if password_env is not None:
        if user is None:
            raise click.UsageError("--password-env needs --apply USER")
        password = os.environ.get(password_env)
        if not password:
            raise click.UsageError(f"--password-env: ${password_env} is not set")
    if version_text is None:
        # a cluster is as capable as its oldest primary: every node must take the rule
        version = min(info.version for info in server_infos(state.client()))
    else:
        version = _version(version_text)
    tokens = acl_tokens(
        state.namespace, redis_version=version, read_config=read_config, extra_commands=extra
    )
    data: dict[str, Any] = {
        "namespace": state.namespace,
        "redis_version": ".".join(str(part) for part in version),
        "rule": " ".join(tokens),
        "applied": None,
    }
    if user is not None:
        nodes = _apply(state.client(), user, tokens, password)
        data["applied"] = {"user": user, "nodes": [node or None for node in nodes]}
    state.out.result(data, lambda console: _render(console, data))


def _render(console: Console, data: dict[str, Any]) -> None:
    # soft_wrap: the rule is one line to paste, whatever the terminal's width
    console.print(escape(data["rule"]), soft_wrap=True)
    applied = data["applied"]
    if applied is not None:
        where = ", ".join(node for node in applied["nodes"] if node) or "the server"
        console.print(f"applied to user {escape(applied['user'])!r} on {escape(where)}")


COMMANDS: list[click.Command] = [acl]
