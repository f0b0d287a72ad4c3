"""``doctor``: is this server fit to keep history? Each finding says what to change.

On a cluster every primary is asked for its settings (INFO and CONFIG GET go to one
node through a cluster client); Lua, commands and latency are tried through the client.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import click
import redis
from rich.console import Console
from rich.markup import escape

from eventstore._redis.clients import node_clients
from eventstore._redis.server import server_info
from eventstore.cli._diagnosis import Facts, Finding, NodeFacts, diagnose
from eventstore.cli._fetch import text
from eventstore.cli._options import json_option, pass_state
from eventstore.cli._state import CliState

__all__ = ["COMMANDS", "gather_facts"]

_PINGS = 20


def _rdb_save(client: redis.Redis) -> str | None:
    try:
        reply: dict[Any, Any] = client.config_get("save")
    except redis.ResponseError:
        return None
    return next((text(v) for k, v in reply.items() if text(k) == "save"), None)


def _lua(client: redis.Redis) -> tuple[bool, str]:
    # A constant script, run the way the store runs its own (EVALSHA, SCRIPT LOAD after
    # NOSCRIPT; no EVAL, which the ACL rule does not grant): does the server run Lua
    # (some managed services disable scripting)? Nothing stored is ever evaluated.
    try:
        return int(client.register_script("return 1")()) == 1, ""
    except redis.ResponseError as exc:
        return False, str(exc)


def _latency(client: redis.Redis) -> dict[str, float]:
    samples = []
    for _ in range(_PINGS):
        started = time.perf_counter()
        client.ping()
        samples.append((time.perf_counter() - started) * 1000)
    return {"p50": round(statistics.median(samples), 3), "max": round(max(samples), 3)}


def _nodes(client: redis.Redis) -> list[NodeFacts]:
    with node_clients(client) as nodes:
        return [NodeFacts(name, server_info(node), _rdb_save(node)) for name, node in nodes.items()]


def gather_facts(client: redis.Redis) -> Facts:
    """Read everything ``doctor`` judges (tolerates CONFIG being disabled)."""
    lua_ok, lua_error = _lua(client)
    nodes = _nodes(client)
    # each primary answered COMMAND INFO with the rest of its facts
    missing = dict.fromkeys(name for node in nodes for name in node.info.missing_commands)
    return Facts(
        nodes=nodes,
        lua_ok=lua_ok,
        lua_error=lua_error,
        missing_commands=list(missing),
        latency_ms=_latency(client),
    )


_STYLE = {"ok": "green", "warning": "yellow", "error": "red"}


def _render(console: Console, findings: list[Finding]) -> None:
    for finding in findings:
        style = _STYLE[finding.level]
        advice = f" -> {escape(finding.advice)}" if finding.advice else ""
        where = f" on {finding.node}" if finding.node else ""
        line = f"{finding.check}{where}: {escape(finding.detail)}{advice}"
        console.print(f"[{style}]{finding.level.upper():8}[/] {line}")


def _server_json(facts: Facts) -> dict[str, Any]:
    # a cluster is as capable as its oldest primary
    oldest = min((n.info for n in facts.nodes), key=lambda info: info.version)
    nodes = [
        {"node": n.node or None, "name": n.info.name, "version": n.info.version_text}
        for n in facts.nodes
    ]
    return {
        "name": oldest.name,
        "product": oldest.product,
        "version": oldest.version_text,
        "mode": oldest.mode,
        "nodes": nodes,
    }


@click.command()
@json_option
@pass_state
def doctor(state: CliState) -> None:
    """Check the server: version, persistence, eviction, stream settings, Lua, latency."""
    facts = gather_facts(state.client())
    findings = diagnose(facts)
    errors = [f for f in findings if f.level == "error"]
    data = {
        "server": _server_json(facts),
        "ok": not errors,
        "findings": [finding.as_json() for finding in findings],
    }
    state.out.result(data, lambda console: _render(console, findings))
    if errors:
        click.get_current_context().exit(1)


COMMANDS: list[click.Command] = [doctor]
