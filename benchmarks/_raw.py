"""Raw redis-py doing the same Redis work with no framework: the physical limit.

Payloads are the event type and the JSON body, the least a plain-stream event log stores;
JSON encoding happens inside the timed code, as it does on our side.
"""

from __future__ import annotations

import json
from typing import Any, cast

import redis

from eventstore._core.records import Entries

__all__ = [
    "APPEND_CEILING_SCRIPT",
    "BATCH_SCRIPT",
    "copy_each",
    "copy_streams",
    "entry_ids",
    "payload",
    "xrange_all",
]

BATCH_SCRIPT = """
-- KEYS[1]: the stream; ARGV: one JSON body per event (all appended in one call)
for i = 1, #ARGV do
  redis.call('XADD', KEYS[1], '*', 't', 'BenchDeposited', 'd', ARGV[i])
end
return #ARGV
"""

APPEND_CEILING_SCRIPT = """
-- The least an append with an expected version does, atomically, in our layout.
-- KEYS: stream, log, position counter. ARGV: expected version, type, schema version,
-- event id, time (ms), data (JSON), pointer (<type>:<id>). No checks of the input.
local version = redis.call('XLEN', KEYS[1])
if version ~= tonumber(ARGV[1]) then return {'conflict', version} end
local position = redis.call('INCR', KEYS[3])
redis.call('XADD', KEYS[1], '0-' .. (version + 1), 't', ARGV[2], 's', ARGV[3], 'i', ARGV[4],
           'ts', ARGV[5], 'p', position, 'd', ARGV[6])
redis.call('XADD', KEYS[2], '0-' .. position, 'k', ARGV[7], 'v', version + 1, 't', ARGV[2])
return {'ok', version + 1, position}
"""


def payload(amount: int) -> dict[str, str]:
    """The fields of one raw event."""
    return {"t": "BenchDeposited", "d": json.dumps({"amount": amount})}


def xrange_all(client: redis.Redis, key: str, page: int) -> int:
    """Read the whole stream in XRANGE pages of ``page``; returns the entries read."""
    count, low = 0, "-"
    while True:
        entries = cast(Entries, client.xrange(key, low, "+", count=page))
        count += len(entries)
        if len(entries) < page:
            return count
        low = f"({entries[-1][0].decode()}"


def copy_streams(client: redis.Redis, sources: list[str], target: str) -> int:
    """Append every entry of ``sources`` (fields as stored) to the one stream ``target``."""
    return _copy(client, sources, [target] * len(sources), keep_ids=False)


def copy_each(client: redis.Redis, sources: list[str], targets: list[str]) -> int:
    """Append every entry of each source (same id, fields as stored) to its own target."""
    return _copy(client, sources, targets, keep_ids=True)


def _copy(client: redis.Redis, sources: list[str], targets: list[str], *, keep_ids: bool) -> int:
    copied = 0
    for start in range(0, len(sources), 100):
        with client.pipeline(transaction=False) as pipe:
            for source in sources[start : start + 100]:
                pipe.xrange(source)
            pages = cast(list[Entries], pipe.execute())
        with client.pipeline(transaction=False) as pipe:
            for target, entries in zip(targets[start : start + 100], pages, strict=True):
                for entry_id, fields in entries:
                    pipe.xadd(target, dict(fields), id=entry_id if keep_ids else "*")  # type: ignore[arg-type]
                    copied += 1
            pipe.execute()
    return copied


def entry_ids(reply: Any) -> list[bytes]:
    """Entry ids of an XREADGROUP/XREAD reply as redis-py parses it (RESP3 dict or RESP2)."""
    if isinstance(reply, dict):
        return [entry[0] for entries in reply.values() for entry in entries[0]]
    return [entry[0] for _stream, entries in reply or [] for entry in entries]
