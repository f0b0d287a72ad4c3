"""Turning Redis' ACL refusals (``NOPERM``) into ``PermissionDenied`` naming what is missing.

Redis says *what kind* of permission is missing, but not always which one, and words it
differently by version (6.2: ``this user has no permissions to run the 'config' command
or its subcommand``; 7.0: ``... the 'config|get' command``; 7.2+/8: ``User app has no
permissions to run ...``, ``No permissions to access a key``):

- a command: Redis names it; it becomes an ACL token (``+xadd``);
- a key or a channel: Redis does not say which; the caller's keys or channel are named;
- inside a script (6.2/7.0: ``The user executing the script can't ...``, 7.2+: ``ACL
  failure in script: ...``), Redis gives the script's line (``@user_script:<line>``): our
  scripts are sent exactly as their ``.lua`` files are, so the ``redis.call`` on that
  line of the file names the command and its ``KEYS[i]``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from eventstore._core.errors import PermissionDenied

__all__ = ["is_permission_error", "permission_denied", "script_calls"]

_COMMAND = re.compile(r"no permissions to run the '([^']+)' command", re.IGNORECASE)
_SCRIPT_LINE = re.compile(r"@user_script:\s*(\d+)")
_CALL = re.compile(
    r"redis\.p?call\(\s*(?:'([A-Za-z]+)'|([A-Za-z_]+))(?:\s*,\s*'([A-Za-z]+)')?"
    r"(?:\s*,\s*KEYS\[(\d+)\])?"
)
_SUBCOMMANDS = frozenset({"xgroup", "xinfo", "pubsub", "config", "client", "script"})


def is_permission_error(message: str) -> bool:
    """Whether a Redis error text is an ACL refusal (top level or inside a script)."""
    lowered = message.lower()
    return (
        "noperm" in lowered
        or "no permissions to" in lowered
        or "the user executing the script can't" in lowered
        or "acl failure in script" in lowered
    )


def _kind(message: str) -> str:
    lowered = message.lower()
    if _COMMAND.search(message) or "can't run this command" in lowered:
        return "command"
    return "channel" if "channel" in lowered else "key"


def script_calls(source: str, line: int) -> list[tuple[str, int | None]]:
    """The commands called on ``line`` of a Lua script, each with its ``KEYS`` index.

    A command held in a variable (``redis.call(publish, ...)``) comes back as the
    variable's name; the caller knows what it holds.
    """
    lines = source.splitlines()
    if not 1 <= line <= len(lines):
        return []
    calls = []
    for quoted, variable, sub, key in _CALL.findall(lines[line - 1]):
        name = (quoted or variable).lower()
        if sub and name in _SUBCOMMANDS:
            name = f"{name}|{sub.lower()}"
        calls.append((name, int(key) if key else None))
    return calls


def permission_denied(
    message: str,
    *,
    user: str,
    keys: Sequence[str] = (),
    channel: str = "",
    command: str = "",
    script: tuple[str, str] | None = None,
    variables: dict[str, str] | None = None,
) -> PermissionDenied | None:
    """``PermissionDenied`` for an ACL refusal, or ``None`` if ``message`` is not one.

    ``keys``, ``channel`` and ``command`` describe the call that was refused (what the
    caller sent); ``script`` is ``(name, source)`` when the call ran one of our scripts,
    and ``variables`` maps a variable naming a command in it to that command.
    """
    if not is_permission_error(message):
        return None
    reason = " ".join(message.split())
    if script is not None and _SCRIPT_LINE.search(message):
        return _in_script(
            reason, user=user, keys=keys, channel=channel, script=script, variables=variables or {}
        )
    kind = _kind(message)
    found = _COMMAND.search(message)
    if kind == "command" and found:
        # 6.2 names the command without its subcommand: the caller's is more precise
        name = command if command.startswith(f"{found.group(1)}|") else found.group(1)
        return PermissionDenied(user, f"+{name}", command=name, keys=tuple(keys), reason=reason)
    if kind == "command" and command:
        # refused inside a script the caller ran for it (6.2/7.0 name no command there)
        return PermissionDenied(
            user, f"+{command}", command=command, keys=tuple(keys), reason=reason
        )
    if kind == "channel":
        what = f"&{channel}" if channel else "& on the channel"
        return PermissionDenied(user, what, command=command, channel=channel, reason=reason)
    return PermissionDenied(
        user, _key_permission(keys), command=command, keys=tuple(keys), reason=reason
    )


def _in_script(
    reason: str,
    *,
    user: str,
    keys: Sequence[str],
    channel: str,
    script: tuple[str, str],
    variables: dict[str, str],
) -> PermissionDenied:
    name, source = script
    found = _SCRIPT_LINE.search(reason)
    line = int(found.group(1)) if found else 0
    calls = [(variables.get(cmd, cmd), key) for cmd, key in script_calls(source, line)]
    where = f"the {name} script, line {line}"
    commands = "|".join(dict.fromkeys(cmd for cmd, _ in calls)) if calls else ""
    kind = _kind(reason)
    if kind == "key":
        named = [keys[key - 1] for _, key in calls if key is not None and key <= len(keys)]
        at = tuple(named) or tuple(keys)
        return PermissionDenied(
            user, _key_permission(at), command=commands, keys=at, where=where, reason=reason
        )
    if kind == "channel":
        return PermissionDenied(
            user, f"&{channel}", command=commands, channel=channel, where=where, reason=reason
        )
    tokens = " ".join(f"+{cmd}" for cmd, _ in calls) or "+<a command of the script>"
    return PermissionDenied(user, tokens, command=commands, where=where, reason=reason)


def _key_permission(keys: Sequence[str]) -> str:
    if not keys:
        return "~ on a key of the command"
    if len(keys) == 1:
        return f"~{keys[0]}"
    return f"~ on one of {', '.join(keys)}"
