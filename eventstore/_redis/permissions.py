"""The store's boundary for ACL refusals: redis-py's errors in, ``PermissionDenied`` out.

Call sites wrap a Redis call in ``try``/``except redis.ResponseError`` and call
``raise_if_denied`` in the handler (free when nothing is raised)::

    try:
        reply = self._load(keys=keys, args=args)
    except redis.ResponseError as exc:
        raise_if_denied(exc, self.client, keys=keys, script=("load", self._load))
        raise
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
from redis.commands.core import AsyncScript, Script

from eventstore._core.permissions import permission_denied

__all__ = ["address_of", "raise_if_denied", "user_of"]


def user_of(client: Any) -> str:
    """The ACL user ``client`` authenticates as (``default`` without a user name)."""
    manager = getattr(client, "nodes_manager", None)  # a cluster client, sync or async
    if manager is not None:
        kwargs: dict[str, Any] = manager.connection_kwargs
    else:
        pool = getattr(client, "connection_pool", None)
        kwargs = getattr(pool, "connection_kwargs", {}) or {}
    name = kwargs.get("username")
    return str(name) if name else "default"


def address_of(client: Any) -> str:
    """Where ``client`` connects, for messages: ``host:port`` or the Unix socket's path
    (a cluster client: the node it was given); never a password."""
    manager = getattr(client, "nodes_manager", None)
    if manager is not None:
        node = manager.default_node or next(iter(manager.startup_nodes.values()), None)
        return str(node.name) if node is not None else "the cluster"
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {}) or {}
    if kwargs.get("path"):
        return f"unix:{kwargs['path']}"
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"


def raise_if_denied(
    exc: redis.ResponseError,
    client: Any,
    *,
    keys: Sequence[str] = (),
    channel: str = "",
    command: str = "",
    script: tuple[str, Any] | None = None,
    variables: dict[str, str] | None = None,
) -> None:
    """Raise ``PermissionDenied`` (from ``exc``) if ``exc`` is an ACL refusal; else return.

    ``keys``, ``channel`` and ``command`` describe what was sent; ``script`` is the
    name and (sync or async) ``Script`` of one of our Lua scripts when the call ran it.
    """
    denied = permission_denied(
        str(exc),
        user=user_of(client),
        keys=keys,
        channel=channel,
        command=command,
        script=(script[0], _source(script[1])) if script is not None else None,
        variables=variables,
    )
    if denied is not None:
        raise denied from exc


def _source(script: Script | AsyncScript) -> str:
    source = script.script
    return source.decode() if isinstance(source, bytes) else str(source)
