"""The least-privilege Redis ACL rule of an application user of one namespace.

The rule lists every command the store sends (directly, or inside its Lua scripts, which
Redis checks too) and no other, and only the keys and channels of the namespace (every
key is ``{<ns>:p<n>}:...`` or ``<ns>:...``; channels are ``<ns>:live:<type>`` or, sharded,
``{<ns>:p<n>}:live:<type>``). It starts with ``resetkeys``, ``resetchannels`` and
``-@all``, so applying it to an existing user replaces that user's permissions (and keeps
its passwords). Redis refuses a command it does not know in ``ACL SETUSER``, so the rule
depends on the server's version: sharded Pub/Sub exists from 7.0, ``WAITAOF`` and
``CLIENT SETINFO`` from 7.2.

Not granted, on purpose: ``CONFIG`` (it reads secrets such as ``masterauth``; the store
reads the settings it checks from ``INFO`` instead), ``EVAL`` (the store only runs its own
scripts, by SHA), ``KEYS``, ``FLUSHDB`` and every admin command.
"""

from __future__ import annotations

from collections.abc import Sequence

from eventstore._core.keys import validate_name

__all__ = ["acl_rule", "acl_tokens"]

_CONNECTION = ("ping", "select", "client|setname", "command", "cluster|slots", "info")
_SCRIPTS = ("evalsha", "script|load")
_STREAMS = (
    "xadd", "xrange", "xrevrange", "xread", "xreadgroup", "xack", "xautoclaim", "xclaim",
    "xpending", "xgroup|create", "xgroup|destroy", "xinfo|groups", "xinfo|stream",
    "xlen", "xdel", "xtrim",
)  # fmt: skip
_KEYS = (
    "get", "set", "exists", "del", "unlink", "scan", "memory|usage",
    "hget", "hgetall", "hmget", "hset", "hsetnx", "hdel", "hincrby",
    "sadd", "smembers", "sismember", "scard", "sscan",
)  # fmt: skip
_TRANSACTIONS = ("multi", "exec", "discard", "watch", "unwatch", "wait")
_PUBSUB = (
    "publish", "subscribe", "unsubscribe", "psubscribe", "punsubscribe",
    "pubsub|numsub", "pubsub|numpat", "pubsub|channels",
)  # fmt: skip
_SHARDED_PUBSUB = (  # Redis 7.0+
    "spublish", "ssubscribe", "sunsubscribe", "pubsub|shardnumsub", "pubsub|shardchannels",
)  # fmt: skip
_SINCE_7_2 = ("waitaof", "client|setinfo")


def acl_tokens(
    namespace: str,
    *,
    redis_version: tuple[int, ...] = (7, 2),
    read_config: bool = False,
    extra_commands: Sequence[str] = (),
) -> list[str]:
    """The rule of ``acl_rule`` as a list of ``ACL SETUSER`` arguments."""
    validate_name("namespace", namespace)
    tag = f"{{{namespace}:p*}}"
    commands = [*_CONNECTION, *_SCRIPTS, *_STREAMS, *_KEYS, *_TRANSACTIONS, *_PUBSUB]
    if redis_version >= (7, 0):
        commands += _SHARDED_PUBSUB
    if redis_version >= (7, 2):
        commands += _SINCE_7_2
    if read_config:
        commands.append("config|get")
    commands += [name.lower().removeprefix("+") for name in extra_commands]
    return [
        "resetkeys", f"~{tag}:*", f"~{namespace}:*", f"~{{{namespace}:rm:*",
        "resetchannels", f"&{namespace}:live:*", f"&{tag}:live:*",
        "-@all", *(f"+{name}" for name in dict.fromkeys(commands)),
    ]  # fmt: skip


def acl_rule(
    namespace: str,
    *,
    redis_version: tuple[int, ...] = (7, 2),
    read_config: bool = False,
    extra_commands: Sequence[str] = (),
) -> str:
    """The ACL rule that lets a user do everything the store does in ``namespace``, no more.

    Use it after the user name and password, in ``ACL SETUSER`` or an ACL file::

        ACL SETUSER orders-app on >PASSWORD <rule>
        user orders-app on >PASSWORD <rule>            # users.acl

    ``redis_version`` is the server's (``(6, 2)``, ``(7, 0)``, ``(7, 2)`` or newer: the
    commands differ). ``read_config`` adds ``+config|get``, needed only for
    ``Durability.local_fsync()`` on servers older than 7.2 (to verify ``appendfsync
    always``) and for a complete ``eventstore doctor``. ``extra_commands`` adds the
    commands your projections' read models use (``["rpush", "lrange"]``); their keys
    are ``<ns>:rm:...``, inside the rule's key patterns.
    """
    return " ".join(
        acl_tokens(
            namespace,
            redis_version=redis_version,
            read_config=read_config,
            extra_commands=extra_commands,
        )
    )
